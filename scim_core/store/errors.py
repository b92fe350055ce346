"""What a store raises: its own failures, which the service turns into SCIM errors."""

from __future__ import annotations

from collections.abc import Collection

from scim_core.store.base import IndexKey


class StoreError(Exception):
    """Base class of every failure a store reports."""


class NotStored(StoreError):
    """The resource (or, for a member change, the group) is not stored."""

    def __init__(self, kind: str, resource_id: str) -> None:
        super().__init__(f"{kind} {resource_id[:200]} not found")
        self.kind = kind
        self.resource_id = resource_id


class KeyTaken(StoreError):
    """A unique index value already belongs to another resource (nothing was written)."""

    def __init__(self, key: IndexKey) -> None:
        super().__init__(f"{key.name} is already in use")
        self.key = key


class UnknownMembers(StoreError):
    """Members to add whose users are not stored (nothing was written)."""

    def __init__(self, ids: Collection[str]) -> None:
        self.ids = tuple(sorted(ids))
        super().__init__(f"{len(self.ids)} member(s) are not stored users")


class VersionMoved(StoreError):
    """The stored resource changed since it was read (its etag moved on)."""


class TooLarge(StoreError):
    """The resource or change cannot be stored: it exceeds a storage limit."""


class BadCursor(StoreError):
    """A paging cursor the store did not issue."""


class StorageUnavailable(StoreError):
    """Storage cannot answer now; ``retry_after`` is the seconds to wait before retrying."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class CursorExpired(StoreError):
    """A feed cursor older than the retention: events after it are gone, so the reader
    must resynchronise (read the directory again) and follow from a fresh position."""


class TenantGone(StoreError):
    """The tenant this view serves was deleted (or is being deleted), or its id now names a
    new tenant: nothing was written, and the caller answers as for an unknown tenant."""

    def __init__(self) -> None:
        super().__init__("The tenant is gone.")


class NotEmpty(StoreError):
    """A tenant id whose partition still holds rows (other than a tombstone)."""
