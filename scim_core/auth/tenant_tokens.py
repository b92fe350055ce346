"""Each tenant's token source: one secret per tenant, the sources kept in a bounded cache."""

from __future__ import annotations

import threading
from collections.abc import Callable

from scim_core.auth.source import TokenSource
from scim_core.lru import Lru
from scim_core.tenants.model import DEFAULT_TENANT

TENANT_SECRET_PREFIX = "scim-token-"


def tenant_secret_name(tenant_id: str, default_secret: str) -> str:
    """The secret holding a tenant's token: ``default_secret`` (``SCIM_TOKEN_SECRET_NAME``,
    ``scim-bearer-token``) for the default tenant, ``scim-token-<id>`` for any other."""
    return default_secret if tenant_id == DEFAULT_TENANT else TENANT_SECRET_PREFIX + tenant_id


class RefuseAll:
    """The source of a tenant no secret store can vouch for: every token is refused."""

    def accepts(self, presented: str) -> bool:
        """Always False."""
        return False


class TenantTokens:
    """The token source of each tenant: the default tenant's as configured, any other's
    built by ``make`` from its secret's name (None: no secret store, so other tenants'
    tokens are all refused). At most ``size`` sources are kept, least recently used out."""

    def __init__(self, default: TokenSource, make: Callable[[str], TokenSource] | None, *,
                 default_secret: str, size: int = 20_000) -> None:
        self._default = default
        self._make = make
        self._default_secret = default_secret
        self._lock = threading.Lock()  # one source per tenant, even when asked at once
        self._sources: Lru[str, tuple[int, TokenSource]] = Lru(size)
        """Each tenant's source, with the epoch of the tenant it was made for."""

    def source(self, tenant_id: str, epoch: int = 0) -> TokenSource:
        """The token source of ``tenant_id`` in its ``epoch``: a re-created id (a new
        epoch) gets a new source, never the tokens cached for the tenant before it."""
        if tenant_id == DEFAULT_TENANT:
            return self._default
        if self._make is None:
            return RefuseAll()
        found = self._sources.get(tenant_id)
        if found is not None and found[0] == epoch:
            return found[1]
        with self._lock:
            found = self._sources.get(tenant_id)
            if found is None or found[0] != epoch:
                found = (epoch, self._make(tenant_secret_name(tenant_id, self._default_secret)))
                self._sources.put(tenant_id, found)
            return found[1]

    def forget(self, tenant_id: str) -> None:
        """Drop a tenant's cached source (its secret was rotated or deleted here)."""
        self._sources.pop(tenant_id)

    def __len__(self) -> int:
        return len(self._sources)
