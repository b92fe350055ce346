"""The Store protocol: what the service needs from storage, and the values it trades in.

Documents hold a resource's attributes only (no ``id``, ``meta`` or ``schemas``); a group's
document never holds its members, which live in membership rows of their own so that
member changes cost the same whatever the group's size.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

USER = "User"
GROUP = "Group"


@dataclass(frozen=True)
class IndexKey:
    """One value a resource is found by: ``userName``, ``externalId``, ``email`` or
    ``displayName``. ``value`` is already normalised (case-folded where the attribute is
    case-insensitive). A unique key may belong to one resource of its kind only."""

    name: str
    value: str
    unique: bool


@dataclass(frozen=True)
class Member:
    value: str
    display: str | None = None


@dataclass(frozen=True)
class MemberChange:
    """Membership edits, applied in this order: clear all, remove listed, add listed."""

    remove_all: bool = False
    remove: tuple[str, ...] = ()
    add: tuple[Member, ...] = ()

    def __bool__(self) -> bool:
        return self.remove_all or bool(self.remove) or bool(self.add)


@dataclass(frozen=True)
class Meta:
    """Server-owned metadata kept beside the document: ISO-8601 UTC times and a version."""

    created: str
    last_modified: str
    version: str


@dataclass(frozen=True)
class Record:
    kind: str
    id: str
    document: dict[str, Any] = field(compare=False)
    meta: Meta
    etag: str = ""
    """The store's own concurrency token; opaque to the service."""


class DuplicateKey(Exception):
    """A unique index value already belongs to another resource."""

    def __init__(self, key: IndexKey) -> None:
        super().__init__(f"{key.name} is already in use")
        self.key = key


class UnknownMembers(Exception):
    """Members to add whose users are not stored (nothing was written)."""

    def __init__(self, ids: Collection[str]) -> None:
        self.ids = tuple(sorted(ids))
        super().__init__(f"{len(self.ids)} member(s) are not stored users")


class VersionMismatch(Exception):
    """The stored resource changed since it was read (its etag moved on)."""


class Store(Protocol):
    """Storage for one or more tenants' users and groups.

    Every write is atomic: it happens whole or not at all (member changes beyond one
    storage transaction are the documented exception: they are idempotent and complete on
    retry). A member added must be a stored user of the tenant when the write lands: else
    ``UnknownMembers`` is raised and nothing is written, and no membership outlives its
    user or group (a user deleted while a change beyond one transaction is under way is left
    out of the rest of it). Missing resources raise ``scim_core.errors.NotFound``; storage
    faults raise ``scim_core.errors.ServiceUnavailable``.
    """

    def create(self, tenant: str, record: Record, indexes: Sequence[IndexKey],
               members: Sequence[Member] = ()) -> Record:
        """Store a new resource with its index rows (and members, for a group).

        Raises ``DuplicateKey`` when a unique index value is taken and ``UnknownMembers``
        when a member is not a stored user (nothing is written).
        """
        ...

    def get(self, tenant: str, kind: str, resource_id: str) -> Record | None: ...

    def update(self, tenant: str, kind: str, resource_id: str, *, meta: Meta,
               expected_etag: str | None, document: Mapping[str, Any] | None = None,
               indexes: Sequence[IndexKey] | None = None,
               members: MemberChange | None = None) -> Record:
        """Write new metadata and, when given, a new document with its index rows and
        membership edits, as one change.

        With ``expected_etag`` the write happens only if the stored etag still equals it
        (else ``VersionMismatch``). ``document=None`` keeps the stored document and indexes
        (a member-only change). Raises ``DuplicateKey`` when a new unique value is taken and
        ``UnknownMembers`` when an added member is not a stored user.
        """
        ...

    def change_members(self, tenant: str, group_id: str, *, last_modified: str, version: str,
                       members: MemberChange) -> str:
        """``update`` of a group's members (no document, no etag) that sets its meta's
        ``last_modified`` and ``version`` (``created`` stays; an empty change renews only
        them) and does not read the group, before or after; returns the group's new etag."""
        ...

    def delete(self, tenant: str, kind: str, resource_id: str) -> None:
        """Remove a resource, its index rows and its membership rows in both directions."""
        ...

    def lookup(self, tenant: str, kind: str, key: IndexKey) -> list[Record]:
        """The resources whose index ``key.name`` holds ``key.value`` (a point read)."""
        ...

    def scan(self, tenant: str, kind: str) -> Iterator[Record]:
        """Every resource of a kind, ordered by id."""
        ...

    def page(self, tenant: str, kind: str, *, cursor: str | None,
             size: int) -> tuple[list[Record], str | None]:
        """Up to ``size`` resources of a kind in id order, starting at an opaque ``cursor``
        from an earlier page (None: the first page); returns them and the next cursor
        (None after the last page). Raises ``scim_core.errors.InvalidCursor`` for a cursor it did
        not issue."""
        ...

    def members(self, tenant: str, group_id: str) -> Iterator[Member]:
        """A group's members, ordered by user id."""
        ...

    def is_member(self, tenant: str, group_id: str, user_id: str) -> bool: ...

    def groups_of(self, tenant: str, user_id: str) -> list[str]:
        """The ids of the groups a user is a direct member of."""
        ...

    def existing(self, tenant: str, kind: str, ids: Collection[str]) -> set[str]:
        """Which of ``ids`` name stored resources of ``kind``."""
        ...
