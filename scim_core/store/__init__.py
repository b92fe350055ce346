"""Storage behind one protocol: in memory, or Azure Table Storage."""

from scim_core.store.base import (
    GROUP,
    USER,
    DuplicateKey,
    IndexKey,
    Member,
    MemberChange,
    Meta,
    Record,
    Store,
    UnknownMembers,
    VersionMismatch,
)
from scim_core.store.memory import MemoryStore

__all__ = [
    "GROUP",
    "USER",
    "DuplicateKey",
    "IndexKey",
    "Member",
    "MemberChange",
    "MemoryStore",
    "Meta",
    "Record",
    "Store",
    "UnknownMembers",
    "VersionMismatch",
]
