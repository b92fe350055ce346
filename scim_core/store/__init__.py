"""Storage behind one protocol, bound to a tenant: in memory, or Azure Table Storage."""

from scim_core.store.base import (
    GROUP,
    USER,
    IndexKey,
    Member,
    MemberChange,
    Meta,
    Record,
    Related,
    Store,
    TenantStore,
)
from scim_core.store.errors import (
    BadCursor,
    KeyTaken,
    NotEmpty,
    NotStored,
    StorageUnavailable,
    StoreError,
    TenantGone,
    TooLarge,
    UnknownMembers,
    VersionMoved,
)
from scim_core.store.memory import MemoryStore

__all__ = [
    "GROUP",
    "USER",
    "BadCursor",
    "IndexKey",
    "KeyTaken",
    "Member",
    "MemberChange",
    "MemoryStore",
    "Meta",
    "NotEmpty",
    "NotStored",
    "Record",
    "Related",
    "StorageUnavailable",
    "Store",
    "StoreError",
    "TenantGone",
    "TenantStore",
    "TooLarge",
    "UnknownMembers",
    "VersionMoved",
]
