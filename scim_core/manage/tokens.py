"""A tenant's token versions as metadata (never a value), from the tenant admin's token
versions."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from scim_core.auth.secrets import newest_first
from scim_core.operations.tenants import TenantAdmin


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def token_versions(admin: TenantAdmin, tenant_id: str) -> list[dict[str, Any]]:
    """The versions of the tenant's token secret, newest first: id, created, expiry and
    whether the app accepts it now."""
    tokens = admin.tokens
    now = time.time()
    return [{"version": v.version, "created": _when(v.created_on), "enabled": v.enabled,
             "notBefore": _when(v.not_before), "expires": _when(v.expires_on),
             "valid": v.valid_at(now)}
            for v in newest_first(tokens.versions(tokens.secret_name(tenant_id)))]
