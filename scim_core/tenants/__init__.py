"""Tenants: the customers one deployment serves, each with its own Tenant URL and token."""

from scim_core.tenants.model import (
    DEFAULT_TENANT,
    DISABLED,
    ENABLED,
    InvalidTenant,
    Tenant,
    check_tenant_id,
    new_tenant_id,
)
from scim_core.tenants.registry import (
    CachedTenants,
    MemoryTenantRegistry,
    TenantExists,
    TenantMissing,
    TenantMoved,
    TenantRegistry,
)

__all__ = [
    "DEFAULT_TENANT",
    "DISABLED",
    "ENABLED",
    "CachedTenants",
    "InvalidTenant",
    "MemoryTenantRegistry",
    "Tenant",
    "TenantExists",
    "TenantMissing",
    "TenantMoved",
    "TenantRegistry",
    "check_tenant_id",
    "new_tenant_id",
]
