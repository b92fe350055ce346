"""The ``Authorization: Bearer`` check applied to every protected request."""

from __future__ import annotations

from scim_core.auth.source import TokenSource
from scim_core.errors import Unauthorized

# RFC 6750 b64token characters, at most 4,096 of them: every token the admin command issues
# (43 URL-safe characters) and any a person could store and an HTTP client send as a bearer.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")
MAX_TOKEN_LENGTH = 4096

def unauthorized() -> Unauthorized:
    """The one 401 of every refused credential (status, body and headers alike)."""
    return Unauthorized()


def bearer_token(authorization: str | None) -> str | None:
    """The token of a well-formed ``Bearer`` credential (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    if not set(token) <= _TOKEN_CHARS:
        return None
    return token


def presented_token(authorization: str | None) -> str:
    """The token of a well-formed ``Bearer`` credential; 401 otherwise, before anything
    else of the request is looked at or up."""
    token = bearer_token(authorization)
    if token is None:
        raise unauthorized()
    return token


def verify(token: str, source: TokenSource) -> None:
    """401 unless ``source`` accepts ``token`` (``ServiceUnavailable`` when it cannot tell)."""
    if not source.accepts(token):
        raise unauthorized()


def authenticate(authorization: str | None, source: TokenSource) -> None:
    """Raise 401 unless the header carries a token the source accepts.

    The detail never echoes what was presented.
    """
    verify(presented_token(authorization), source)
