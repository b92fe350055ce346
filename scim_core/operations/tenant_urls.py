"""A tenant's URL, to paste into Entra: from the deployment's ``scim-tenant-url`` secret in Key
Vault, else ``SCIM_BASE_URL``, else (local secrets) the local dev host's."""

from __future__ import annotations

from scim_core.auth.secrets import SecretStore
from scim_core.tenants.model import DEFAULT_TENANT

DEFAULT_TENANT_URL_SECRET = "scim-tenant-url"
LOCAL_BASE_URL = "http://127.0.0.1:7071/scim/v2"
SCIM_ROOT = "/scim/v2"


class TenantUrls:
    """Where the default tenant's URL is read, and every tenant's derived from it. With
    ``in_vault`` the vault's ``secret`` (written by the deployment) comes first; without a
    vault ``local_base_url`` (the dev host) is the fallback."""

    def __init__(self, secrets: SecretStore, *, in_vault: bool, base_url: str = "",
                 secret: str = DEFAULT_TENANT_URL_SECRET,
                 local_base_url: str = LOCAL_BASE_URL) -> None:
        self._secrets = secrets
        self._in_vault = in_vault
        self._base_url = base_url
        self.secret = secret
        self.local_base_url = local_base_url.rstrip("/")

    def of(self, tenant_id: str) -> str | None:
        """The tenant's URL; None when a vault holds none and no ``SCIM_BASE_URL`` is set.
        Raises ``SecretStoreError`` when the vault fails."""
        base = self._secrets.read(self.secret) if self._in_vault else None
        base = base or self._base_url or None
        if base is None and not self._in_vault:
            base = self.local_base_url
        return None if base is None else tenant_url(base, tenant_id)

    def missing(self) -> str:
        """Why no Tenant URL is known (Key Vault without the deployment's URL secret)."""
        return (f"the vault has no enabled secret {self.secret!r} holding the Tenant URL; the "
                "deployment stores it there, and its output SCIM_TENANT_URL has the same value "
                "(or set SCIM_BASE_URL)")


def tenant_url(default_url: str, tenant_id: str) -> str:
    """A tenant's URL from the default tenant's (``https://<host>/scim/v2``)."""
    base = default_url.rstrip("/")
    if tenant_id == DEFAULT_TENANT:
        return base
    site = base[:-len(SCIM_ROOT)] if base.lower().endswith(SCIM_ROOT) else base
    return f"{site}/tenants/{tenant_id}{SCIM_ROOT}"
