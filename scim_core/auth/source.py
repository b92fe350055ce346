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


def version_of(source: object, presented: str) -> str | None:
    """The version of ``source``'s secret that ``presented`` matched, from what the source
    holds already (no storage or vault call); None when it cannot say. Sources without
    versions (``RefuseAll``, a test's) have no ``version_of``."""
    which = getattr(source, "version_of", None)
    if which is None:
        return None
    try:
        found = which(presented)
    except Exception:  # telling the version is bookkeeping: it never fails a request
        return None
    return found if isinstance(found, str) else None


def constant_time_which(presented: str, accepted: Iterable[tuple[str, str]]) -> str | None:
    """The name of the ``(name, value)`` pair whose value equals ``presented`` (None: no
    match); every value is compared in constant time, as in ``constant_time_in``."""
    presented_bytes = presented.encode("utf-8", "surrogatepass")
    found = None
    for name, candidate in accepted:
        if hmac.compare_digest(presented_bytes, candidate.encode("utf-8", "surrogatepass")):
            found = name
    return found


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

    def version_of(self, presented: str) -> str | None:
        """``static`` when ``presented`` is the configured token (it has no versions)."""
        return constant_time_which(presented, (("static", self._token),))
