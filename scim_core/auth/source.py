"""Token sources: the set of bearer tokens the endpoint currently accepts."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Protocol


class TokenSource(Protocol):
    """Decides whether a presented bearer token is currently valid.

    ``accepts`` returns True or False; when the source cannot decide (its backing store is
    unreachable and nothing is cached) it raises ``scim_core.errors.ServiceUnavailable``.
    It never accepts when in doubt.
    """

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is valid now; ``ServiceUnavailable`` when it cannot tell."""
        ...


def constant_time_in(presented: str, accepted: Iterable[str]) -> bool:
    """True when ``presented`` equals one of ``accepted``; each comparison is constant-time
    and every candidate is compared, so timing reveals neither which nor how much matched."""
    presented_bytes = presented.encode("utf-8", "surrogatepass")
    found = False
    for candidate in accepted:
        if hmac.compare_digest(presented_bytes, candidate.encode("utf-8", "surrogatepass")):
            found = True
    return found


class StaticTokenSource:
    """One fixed token (``SCIM_BEARER_TOKEN``): for local runs and tests."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("a static bearer token must not be empty")
        self._token = token

    def __repr__(self) -> str:
        return "StaticTokenSource(<redacted>)"

    def accepts(self, presented: str) -> bool:
        """Whether ``presented`` is the configured token (constant-time)."""
        return constant_time_in(presented, (self._token,))
