"""Bearer-token authentication: where accepted tokens come from, and the header check."""

from scim_core.auth.bearer import authenticate, bearer_token
from scim_core.auth.source import StaticTokenSource, TokenSource, constant_time_in

__all__ = ["StaticTokenSource", "TokenSource", "authenticate", "bearer_token", "constant_time_in"]
