"""The Store protocol, bound to one tenant, and the values it trades in; failures are in
``store.errors`` (docs/architecture.md, "The store protocol")."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scim_core.events.model import Event, EventDraft
from scim_core.kinds import Kind
from scim_core.tenants.registry import TenantRegistry

USER = Kind.USER
GROUP = Kind.GROUP


@dataclass(frozen=True)
class IndexKey:
    """One value a resource is found by, named by its index (``userName``, ``email``, ...).
    ``value`` is already normalised (case-folded where the attribute is case-insensitive).
    A unique key may belong to one resource of its kind only."""

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

    def without(self, user_ids: frozenset[str] | set[str]) -> MemberChange:
        """The same change with no add of ``user_ids``."""
        return MemberChange(self.remove_all, self.remove,
                            tuple(m for m in self.add if m.value not in user_ids))


@dataclass(frozen=True)
class Meta:
    """Server-owned metadata kept beside the document: ISO-8601 UTC times and a version."""

    created: str
    last_modified: str
    version: str


@dataclass(frozen=True)
class Record:
    kind: Kind
    id: str
    document: dict[str, Any] = field(compare=False)
    meta: Meta
    etag: str = ""
    """The store's own concurrency token; opaque to the service ("" on a record a lookup
    answered from a copy: read it with ``get`` before a conditional write)."""
    index_rows: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    """The keys of the index rows the store holds for this read, where it keeps such rows
    (Table Storage): an ``update`` given this record as ``read`` need not read them again.
    Opaque to the service."""


@dataclass(frozen=True)
class Related:
    """A resource as ``get_related`` read it, with a group's members and a user's group
    ids when they were asked for (else None)."""

    record: Record
    members: list[Member] | None = None
    groups: list[str] | None = None


@dataclass(frozen=True)
class Window:
    """A page of one kind's resources by position, and how many of that kind there are."""

    records: list[Record]
    total: int


Stamp = Callable[[], tuple[str, str]]
"""A fresh ``(last_modified, version)`` for a resource a change touches on the side."""


class TenantStore(Protocol):
    """One tenant's users, groups and memberships.

    Every write is atomic: it happens whole or not at all (member changes beyond one
    storage transaction are the documented exception: they are idempotent and complete on
    retry). A member added must be a stored user of the tenant when the write lands: else
    ``UnknownMembers`` is raised and nothing is written, and no membership outlives its
    user or group (a user deleted while a change beyond one transaction is under way is left
    out of the rest of it). A missing resource raises ``NotStored``; a storage fault
    ``StorageUnavailable``; what exceeds a storage limit ``TooLarge``.

    Every write appends the ``events`` it is given, and the membership events of what it
    adds and removes, to the tenant's feed in the same transaction (docs/events.md).
    """

    @property
    def tenant(self) -> str:
        """The tenant this view is bound to."""
        ...

    def create(self, record: Record, indexes: Sequence[IndexKey],
               members: Sequence[Member] = (), *,
               events: Sequence[EventDraft] = ()) -> Record:
        """Store a new resource with its index rows (and members, for a group).

        Raises ``KeyTaken`` when a unique index value is taken and ``UnknownMembers``
        when a member is not a stored user (nothing is written).
        """
        ...

    def get(self, kind: Kind, resource_id: str) -> Record | None:
        """The stored resource, or None."""
        ...

    def get_related(self, kind: Kind, resource_id: str, *, members: bool = False,
                    groups: bool = False) -> Related | None:
        """``get`` with, when asked, a group's members and a user's group ids, read at once
        (the reads do not wait for one another); None when the resource is not stored."""
        ...

    def update(self, kind: Kind, resource_id: str, *, meta: Meta,
               expected_etag: str | None, document: Mapping[str, Any] | None = None,
               indexes: Sequence[IndexKey] | None = None,
               members: MemberChange | None = None,
               events: Sequence[EventDraft] = (), read: Record | None = None) -> Record:
        """Write new metadata and, when given, a new document with its index rows and
        membership edits, as one change.

        ``read`` is the record as the caller read it (``get``) when ``expected_etag`` is its
        etag: the store may then write on that read instead of reading the resource again.

        With ``expected_etag`` the write happens only if the stored etag still equals it
        (else ``VersionMoved``). ``document=None`` keeps the stored document and indexes
        (a member-only change; one that adds and removes no one writes nothing and returns
        the record as stored). Raises ``KeyTaken`` when a new unique value is taken and
        ``UnknownMembers`` when an added member is not a stored user.
        """
        ...

    def change_members(self, group_id: str, *, last_modified: str, version: str,
                       members: MemberChange, expected_etag: str | None = None,
                       events: Sequence[EventDraft] = ()) -> str | None:
        """``update`` of a group's members (no document) that sets its meta's
        ``last_modified`` and ``version`` (``created`` stays) and does not read the group,
        before or after; returns the group's new etag, or None when the change added and
        removed no one (then nothing is written). With ``expected_etag`` it happens only
        while the group's etag is that (else ``VersionMoved``)."""
        ...

    def delete(self, kind: Kind, resource_id: str, *,
               expected_version: str | None = None,
               events: Callable[[Record], Sequence[EventDraft]] | None = None,
               stamp: Stamp | None = None) -> None:
        """Remove a resource, its index rows and its membership rows in both directions;
        with ``expected_version``, only while its ``meta.version`` still is that (else
        ``VersionMoved``). ``events`` gives the deletion's events from the record as it
        was; with ``stamp``, each group a deleted user leaves gets a new meta from it, and
        a ``group.members_removed`` event."""
        ...

    def append(self, events: Sequence[EventDraft], *,
               tenant_state: str | None = None) -> int | None:
        """Append events that no resource write carries (a tenant's own); returns the last
        position. With ``tenant_state``, only when the feed's recorded tenant state is
        another (then it records this one); else None, and nothing is written."""
        ...

    def events(self, *, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events after position ``after``, in order and without gaps.
        Raises ``CursorExpired`` when events after ``after`` were removed by retention,
        and ``BadCursor`` for a negative position."""
        ...

    def position(self) -> int:
        """The feed's last position (0 before the first event)."""
        ...

    def trim(self, *, before: str, limit: int) -> int:
        """Remove up to ``limit`` of the oldest events whose time is before ``before``
        (ISO 8601); returns how many went. One bounded step of retention."""
        ...

    def lookup(self, kind: Kind, key: IndexKey) -> list[Record]:
        """The resources whose index ``key.name`` holds ``key.value`` (a point read)."""
        ...

    def scan(self, kind: Kind) -> Iterator[Record]:
        """Every resource of a kind, ordered by id, streamed (a page of storage at a time)."""
        ...

    def count(self, kind: Kind) -> int:
        """How many resources of a kind there are: exact, from counts kept by the writes
        themselves (one read, whatever the tenant's size)."""
        ...

    def window(self, kind: Kind, *, offset: int, size: int) -> Window:
        """Up to ``size`` resources of a kind in id order from position ``offset`` (0 is
        the first), and the ``count``. The page after one this process served reads on
        from where that page ended, whatever the offset, so it costs the page; other
        offsets may read the keys before them, never the documents. While resources come
        and go, a page that continues an earlier one (within minutes) continues it."""
        ...

    def page(self, kind: Kind, *, cursor: str | None,
             size: int) -> tuple[list[Record], str | None]:
        """Up to ``size`` resources of a kind in id order, starting at an opaque ``cursor``
        from an earlier page (None: the first page); returns them and the next cursor
        (None after the last page). Raises ``BadCursor`` for a cursor it did not issue."""
        ...

    def members(self, group_id: str) -> Iterator[Member]:
        """A group's members, ordered by user id."""
        ...

    def is_member(self, group_id: str, user_id: str) -> bool:
        """Whether the user is a direct member of the group."""
        ...

    def groups_of(self, user_id: str) -> list[str]:
        """The ids of the groups a user is a direct member of."""
        ...

    def purge(self, *, limit: int) -> int:
        """Remove up to ``limit`` of the tenant's rows, whatever they hold; returns how many
        went (0 once the tenant holds nothing but its feed's tombstone). Each call is one
        bounded step of deleting a tenant (after ``mark_deleting``), and repeating it after a
        failure is safe."""
        ...

    def mark_deleting(self) -> None:
        """Fence the tenant before its purge: once this returns, every write of any process
        on the tenant fails with ``TenantGone``, whatever it has cached."""
        ...

    def mark_deleted(self) -> None:
        """After the purge: keep the tenant's tombstone, which refuses stale writers and
        reads and expires every feed cursor of the tenant."""
        ...

    def start_epoch(self, state: str) -> int:
        """Give the id to a new tenant in ``state``: ``NotEmpty`` while it holds rows other
        than a tombstone; returns the new tenant's epoch (registered with it)."""
        ...


class Store(Protocol):
    """Storage for any number of tenants, each reached through its own bound view, and the
    registry of those tenants."""

    def tenant(self, name: str, epoch: int | None = None) -> TenantStore:
        """The view of tenant ``name``; cheap, so callers may ask for it per request. With
        ``epoch`` (the registry's), the view serves that tenant only: once it is deleted,
        or its id given to a new tenant, reads and writes raise ``TenantGone``."""
        ...

    def tenant_registry(self) -> TenantRegistry:
        """The registry of this store's tenants."""
        ...
