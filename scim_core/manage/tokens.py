"""A tenant's token versions as metadata (never a value), read from where the tokens are
kept: Key Vault's ``SecretClient``, the local secrets, or a ``SecretStore``."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from scim_core.auth.tenant_tokens import tenant_secret_name
from scim_core.tenants.admin import TenantAdmin


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def token_versions(admin: TenantAdmin, tenant_id: str) -> list[dict[str, Any]]:
    """The versions of the tenant's token secret, newest first: id, created, expiry and
    whether the app accepts it now."""
    secret = tenant_secret_name(tenant_id, admin.settings.token_secret_name)
    store = admin.secrets
    versions: list[Any]
    if hasattr(store, "versions"):
        versions = list(store.versions(secret))
    else:
        try:
            versions = list(store.list_properties_of_secret_versions(secret))
        except ResourceNotFoundError:
            versions = []
    now = time.time()
    found = []
    for v in versions:
        not_before = getattr(v, "not_before", None)
        expires = getattr(v, "expires_on", None)
        valid = bool(v.enabled) and (not_before is None or now >= not_before.timestamp()) and (
            expires is None or now < expires.timestamp())
        found.append({"version": str(v.version), "created": _when(v.created_on),
                      "enabled": bool(v.enabled), "notBefore": _when(not_before),
                      "expires": _when(expires), "valid": valid})
    found.sort(key=lambda d: (d["created"] or "", d["version"]), reverse=True)
    return found
