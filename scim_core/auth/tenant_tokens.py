"""Each tenant's token source: one secret per tenant, the sources kept in a bounded cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from scim_core.auth.source import TokenSource
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
        self._size = max(1, size)
        self._lock = threading.Lock()
        self._sources: OrderedDict[str, TokenSource] = OrderedDict()

    def source(self, tenant_id: str) -> TokenSource:
        """The token source of ``tenant_id``."""
        if tenant_id == DEFAULT_TENANT:
            return self._default
        if self._make is None:
            return RefuseAll()
        with self._lock:
            found = self._sources.get(tenant_id)
            if found is not None:
                self._sources.move_to_end(tenant_id)
                return found
            made = self._make(tenant_secret_name(tenant_id, self._default_secret))
            self._sources[tenant_id] = made
            while len(self._sources) > self._size:
                self._sources.popitem(last=False)
            return made

    def forget(self, tenant_id: str) -> None:
        """Drop a tenant's cached source (its secret was rotated or deleted here)."""
        with self._lock:
            self._sources.pop(tenant_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sources)
