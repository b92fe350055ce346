"""The ``Authorization: Bearer`` check applied to every protected request."""

from __future__ import annotations

from scim_core.auth.source import TokenSource
from scim_core.errors import Unauthorized

# RFC 6750 b64token characters; anything else cannot be a token we issued.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")
_MAX_TOKEN_LENGTH = 4096


def bearer_token(authorization: str | None) -> str | None:
    """The token of a well-formed ``Bearer`` credential (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN_LENGTH:
        return None
    if not set(token) <= _TOKEN_CHARS:
        return None
    return token


def authenticate(authorization: str | None, source: TokenSource) -> None:
    """Raise 401 unless the header carries a token the source accepts.

    The detail never echoes what was presented.
    """
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("Missing or malformed Authorization header; expected 'Bearer <token>'.")
    if not source.accepts(token):
        raise Unauthorized("The bearer token is not valid.")
