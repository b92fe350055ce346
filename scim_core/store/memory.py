"""An in-memory Store: one lock, plain dictionaries, JSON copies in and out
(docs/architecture.md, "Memory store")."""

from __future__ import annotations

import bisect
import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from scim_core.events import drafts
from scim_core.events.model import Event, EventDraft
from scim_core.kinds import Kind
from scim_core.store.base import (
    GROUP,
    USER,
    IndexKey,
    Member,
    MemberChange,
    Meta,
    Record,
    Related,
    Stamp,
    Window,
)
from scim_core.store.cursor import decode_cursor, encode_cursor
from scim_core.store.errors import (
    BadCursor,
    CursorExpired,
    KeyTaken,
    NotEmpty,
    NotStored,
    StorageUnavailable,
    UnknownMembers,
    VersionMoved,
)
from scim_core.store.lifecycle import DELETED, DELETING, check_live
from scim_core.store.marks import Marks
from scim_core.tenants.registry import MemoryTenantRegistry

OnCommit = Callable[[str, int], None]


@dataclass
class _Entry:
    document: str
    meta: Meta
    etag: str
    indexes: tuple[IndexKey, ...]


@dataclass
class _Rows:
    """One tenant's data."""

    entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    index: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    members: dict[str, dict[str, Member]] = field(default_factory=lambda: defaultdict(dict))
    member_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    events: list[Event] = field(default_factory=list)
    floor: int = 0
    """The last position retention removed."""
    tenant_state: str | None = None
    """The state the feed records: enabled or disabled (for their events), deleting or
    deleted (which fence every view)."""
    epoch: int = 0
    ids: dict[str, list[str]] = field(default_factory=lambda: {USER: [], GROUP: []})
    """Each kind's ids, sorted: counts and pages by position without sorting the tenant."""
    roster: int = 0
    """Moves with every create and delete (the table store's ``Counts.version``)."""
    since: str = field(default_factory=lambda: uuid.uuid4().hex)

    def listed(self, kind: str, resource_id: str, present: bool) -> None:
        """Keep ``ids`` in step with a create (``present``) or a delete."""
        ids = self.ids[kind]
        at = bisect.bisect_left(ids, resource_id)
        if present:
            ids.insert(at, resource_id)
        else:
            del ids[at]
        self.roster += 1


class MemoryStore:
    """The Store protocol in process memory; for local runs, tests and benchmarks."""

    def __init__(self, *, on_commit: OnCommit | None = None) -> None:
        self._lock = threading.RLock()
        self._tenants: dict[str, _Rows] = defaultdict(_Rows)
        self._etags = count(1)
        self._registry = MemoryTenantRegistry()
        self._on_commit = on_commit
        self._marks = Marks()

    def tenant(self, name: str, epoch: int | None = None) -> MemoryTenantStore:
        """The view of tenant ``name``; with ``epoch``, of that tenant only."""
        with self._lock:
            return MemoryTenantStore(name, self._tenants[name], self._lock, self._etags,
                                     self._on_commit, epoch, self._marks)

    def tenant_registry(self) -> MemoryTenantRegistry:
        """The registry of this store's tenants."""
        return self._registry


class MemoryTenantStore:
    """One tenant's rows of a ``MemoryStore``, under the store's one lock."""

    def __init__(self, name: str, rows: _Rows, lock: threading.RLock,
                 etags: Iterator[int], on_commit: OnCommit | None = None,
                 epoch: int | None = None, marks: Marks | None = None) -> None:
        self._name = name
        self._t = rows
        self._lock = lock
        self._etags = etags
        self._on_commit = on_commit
        self._epoch = epoch
        self._marks = marks if marks is not None else Marks()

    @property
    def tenant(self) -> str:
        """The tenant this view is bound to."""
        return self._name

    # -- helpers ---------------------------------------------------------------------------

    def _writable(self) -> None:
        """``TenantGone`` unless the feed is live and this view's tenant's (the fence every
        write meets, as on Table Storage)."""
        check_live(self._t.tenant_state, self._t.epoch, self._epoch)

    def _readable(self) -> None:
        """``TenantGone`` when a view bound to a tenant outlived it."""
        if self._epoch is not None:
            self._writable()

    def _record(self, kind: Kind, resource_id: str, entry: _Entry) -> Record:
        return Record(kind, resource_id, json.loads(entry.document), entry.meta, entry.etag)

    def _check_unique(self, kind: str, resource_id: str, indexes: Sequence[IndexKey]) -> None:
        for key in indexes:
            if key.unique and self._t.index.get((kind, key.name, key.value), set()) - {
                    resource_id}:
                raise KeyTaken(key)

    def _set_indexes(self, kind: str, resource_id: str, old: Sequence[IndexKey],
                     new: Sequence[IndexKey]) -> None:
        index = self._t.index
        for key in old:
            ids = index.get((kind, key.name, key.value))
            if ids is not None:
                ids.discard(resource_id)
                if not ids:
                    del index[(kind, key.name, key.value)]
        for key in new:
            index[(kind, key.name, key.value)].add(resource_id)

    def _check_users(self, added: Sequence[Member]) -> None:
        missing = {m.value for m in added if (USER, m.value) not in self._t.entries}
        if missing:
            raise UnknownMembers(missing)

    def _apply_members(self, group_id: str, change: MemberChange, *, meta: Meta | None = None
                       ) -> list[EventDraft]:
        """Apply ``change``; with ``meta`` (the group's new meta), its membership events."""
        current = self._t.members[group_id]
        member_of = self._t.member_of
        removed: set[str] = set()  # kept to the change's size: groups can be large
        if change.remove_all:
            for user_id in current:
                member_of[user_id].discard(group_id)
            removed.update(current)
            current.clear()
        for user_id in change.remove:
            if current.pop(user_id, None) is not None:
                member_of[user_id].discard(group_id)
                removed.add(user_id)
        for member in change.add:
            current[member.value] = member
            member_of[member.value].add(group_id)
        if meta is None:
            return []
        added = {member.value for member in change.add}
        return drafts.membership(group_id, removed=removed - added, added=added,
                                 time=meta.last_modified, version=meta.version)

    def _append(self, events: Sequence[EventDraft]) -> None:
        """Place ``events`` in the feed (under the lock, so with the change itself)."""
        if not events:
            return
        feed = self._t.events
        start = feed[-1].position if feed else self._t.floor
        feed.extend(Event.placed(draft, self._name, start + offset)
                    for offset, draft in enumerate(events, 1))
        if self._on_commit is not None:
            self._on_commit(self._name, feed[-1].position)

    # -- Store protocol --------------------------------------------------------------------

    def create(self, record: Record, indexes: Sequence[IndexKey],
               members: Sequence[Member] = (), *,
               events: Sequence[EventDraft] = ()) -> Record:
        """Store a new resource with its index rows (and members, for a group)."""
        with self._lock:
            self._writable()
            self._check_unique(record.kind, record.id, indexes)
            if record.kind == GROUP:
                self._check_users(members)
            entry = _Entry(json.dumps(record.document), record.meta, str(next(self._etags)),
                           tuple(indexes))
            if (record.kind, record.id) not in self._t.entries:
                self._t.listed(record.kind, record.id, True)
            self._t.entries[(record.kind, record.id)] = entry
            self._set_indexes(record.kind, record.id, (), indexes)
            emitted = list(events)
            if record.kind == GROUP and members:
                emitted += self._apply_members(record.id, MemberChange(add=tuple(members)),
                                               meta=record.meta)
            self._append(emitted)
            return self._record(record.kind, record.id, entry)

    def get(self, kind: Kind, resource_id: str) -> Record | None:
        """The stored resource, or None."""
        with self._lock:
            self._readable()
            entry = self._t.entries.get((kind, resource_id))
            return None if entry is None else self._record(kind, resource_id, entry)

    def get_related(self, kind: Kind, resource_id: str, *, members: bool = False,
                    groups: bool = False) -> Related | None:
        """The stored resource and the relations asked for, or None."""
        with self._lock:
            record = self.get(kind, resource_id)
            if record is None:
                return None
            return Related(record,
                           list(self.members(resource_id)) if members else None,
                           self.groups_of(resource_id) if groups else None)

    def update(self, kind: Kind, resource_id: str, *, meta: Meta,
               expected_etag: str | None, document: Mapping[str, Any] | None = None,
               indexes: Sequence[IndexKey] | None = None,
               members: MemberChange | None = None,
               events: Sequence[EventDraft] = (), read: Record | None = None) -> Record:
        """Write new metadata and optionally a document, indexes and member edits (``read``
        saves nothing here: the entry is at hand)."""
        with self._lock:
            self._writable()
            entry = self._t.entries.get((kind, resource_id))
            if entry is None:
                raise NotStored(kind, resource_id)
            if expected_etag is not None and entry.etag != expected_etag:
                raise VersionMoved()
            new_indexes = entry.indexes if indexes is None or document is None else tuple(indexes)
            self._check_unique(kind, resource_id, new_indexes)
            if members and kind == GROUP:
                self._check_users(members.add)
            if document is not None:
                self._set_indexes(kind, resource_id, entry.indexes, new_indexes)
                entry.document = json.dumps(document)
                entry.indexes = new_indexes
            emitted = list(events)
            if members and kind == GROUP:
                emitted += self._apply_members(resource_id, members, meta=meta)
            if document is None and not emitted:
                return self._record(kind, resource_id, entry)  # no membership changed
            entry.meta = meta
            entry.etag = str(next(self._etags))
            self._append(emitted)
            return self._record(kind, resource_id, entry)

    def change_members(self, group_id: str, *, last_modified: str, version: str,
                       members: MemberChange, expected_etag: str | None = None,
                       events: Sequence[EventDraft] = ()) -> str | None:
        """Member edits with a new last_modified and version; returns the new etag."""
        with self._lock:
            self._writable()
            entry = self._t.entries.get((GROUP, group_id))
            if entry is None:
                raise NotStored(GROUP, group_id)
            meta = Meta(entry.meta.created, last_modified, version)
            before = entry.etag
            after = self.update(GROUP, group_id, meta=meta, expected_etag=expected_etag,
                                members=members, events=events).etag
            return None if after == before else after

    def delete(self, kind: Kind, resource_id: str, *,
               expected_version: str | None = None,
               events: Callable[[Record], Sequence[EventDraft]] | None = None,
               stamp: Stamp | None = None) -> None:
        """Remove a resource, its index rows and its memberships."""
        with self._lock:
            self._writable()
            self._delete(kind, resource_id, expected_version=expected_version, events=events,
                         stamp=stamp)

    def _delete(self, kind: Kind, resource_id: str, *,
                expected_version: str | None = None,
                events: Callable[[Record], Sequence[EventDraft]] | None = None,
                stamp: Stamp | None = None) -> None:
        with self._lock:
            t = self._t
            entry = t.entries.get((kind, resource_id))
            if entry is None:
                raise NotStored(kind, resource_id)
            if expected_version is not None and entry.meta.version != expected_version:
                raise VersionMoved()
            emitted = [] if events is None else list(events(
                self._record(kind, resource_id, entry)))
            del t.entries[(kind, resource_id)]
            t.listed(kind, resource_id, False)
            self._set_indexes(kind, resource_id, entry.indexes, ())
            if kind == GROUP:
                self._apply_members(resource_id, MemberChange(remove_all=True))
                t.members.pop(resource_id, None)
            elif kind == USER:
                left: list[EventDraft] = []
                for group_id in sorted(t.member_of.pop(resource_id, set())):
                    t.members[group_id].pop(resource_id, None)
                    group = t.entries.get((GROUP, group_id))
                    if stamp is not None and group is not None:
                        last_modified, version = stamp()
                        group.meta = Meta(group.meta.created, last_modified, version)
                        group.etag = str(next(self._etags))
                        left += drafts.membership(group_id, removed=[resource_id],
                                                  time=last_modified, version=version)
                emitted += left
            self._append(emitted)

    def lookup(self, kind: Kind, key: IndexKey) -> list[Record]:
        """The resources whose index holds the key's value."""
        with self._lock:
            self._readable()
            ids = sorted(self._t.index.get((kind, key.name, key.value), ()))
            return [self._record(kind, i, self._t.entries[(kind, i)]) for i in ids]

    def scan(self, kind: Kind) -> Iterator[Record]:
        """Every resource of a kind, ordered by id, a hundred at a time."""
        after: str | None = None
        while True:
            with self._lock:
                self._readable()
                ids = self._t.ids[kind]
                start = 0 if after is None else bisect.bisect_right(ids, after)
                chosen = [self._record(kind, i, self._t.entries[(kind, i)])
                          for i in ids[start:start + 100]]
            if not chosen:
                return
            yield from chosen
            after = chosen[-1].id

    def count(self, kind: Kind) -> int:
        """How many resources of a kind there are."""
        with self._lock:
            self._readable()
            return len(self._t.ids[kind])

    def window(self, kind: Kind, *, offset: int, size: int) -> Window:
        """Up to ``size`` resources of a kind from position ``offset``, and the count."""
        with self._lock:
            self._readable()
            t = self._t
            ids = t.ids[kind]
            listing = (id(self._marks), self._name, t.since, kind)
            base, after = self._marks.start(listing, offset, t.roster)
            start = (0 if after is None else bisect.bisect_right(ids, after)) + offset - base
            chosen = ids[start:start + max(0, size)] if offset >= 0 else []
            if chosen:
                self._marks.put(listing, offset + len(chosen), chosen[-1], t.roster,
                                served=True)
            return Window([self._record(kind, i, t.entries[(kind, i)]) for i in chosen],
                          len(ids))

    def page(self, kind: Kind, *, cursor: str | None,
             size: int) -> tuple[list[Record], str | None]:
        """A page of resources in id order from ``cursor``, and the next cursor."""
        after = decode_cursor(cursor, self._epoch or 0) if cursor else ""
        with self._lock:
            self._readable()
            entries = self._t.entries
            ids = self._t.ids[kind]
            start = bisect.bisect_right(ids, after)
            chosen = [self._record(kind, i, entries[(kind, i)])
                      for i in ids[start:start + max(0, size)]]
            more = len(ids) > start + size
        return chosen, (encode_cursor(chosen[-1].id, self._epoch or 0)
                        if more and chosen else None)

    def members(self, group_id: str) -> Iterator[Member]:
        """A group's members, ordered by user id."""
        with self._lock:
            self._readable()
            found = self._t.members.get(group_id, {})
            return iter(sorted(found.values(), key=lambda m: m.value))

    def is_member(self, group_id: str, user_id: str) -> bool:
        """Whether the user is a direct member of the group."""
        with self._lock:
            self._readable()
            return user_id in self._t.members.get(group_id, {})

    def groups_of(self, user_id: str) -> list[str]:
        """The ids of the groups a user is a direct member of."""
        with self._lock:
            self._readable()
            return sorted(self._t.member_of.get(user_id, ()))

    def append(self, events: Sequence[EventDraft], *,
               tenant_state: str | None = None) -> int | None:
        """Append events no resource write carries; with ``tenant_state``, only on a change."""
        with self._lock:
            self._writable()
            if tenant_state is not None:
                if self._t.tenant_state == tenant_state:
                    return None
                self._t.tenant_state = tenant_state
            self._append(events)
            return self._position()

    def events(self, *, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events after position ``after``."""
        if after < 0:
            raise BadCursor("The cursor is not valid.")
        with self._lock:
            self._readable()
            t = self._t
            if after < t.floor:
                raise CursorExpired("Events after the cursor were removed (by retention, or "
                                    "with the tenant).")
            first = t.events[0].position if t.events else t.floor + 1
            start = after + 1 - first
            return t.events[start:start + max(0, limit)]

    def _position(self) -> int:
        return self._t.events[-1].position if self._t.events else self._t.floor

    def position(self) -> int:
        """The feed's last position."""
        with self._lock:
            self._readable()
            return self._position()

    def trim(self, *, before: str, limit: int) -> int:
        """Remove up to ``limit`` of the oldest events older than ``before``."""
        with self._lock:
            t = self._t
            gone = 0
            for event in t.events[:max(0, limit)]:
                if event.time >= before:
                    break
                gone += 1
            if gone:
                t.floor = t.events[gone - 1].position
                del t.events[:gone]
            return gone

    def purge(self, *, limit: int) -> int:
        """Remove up to ``limit`` rows' worth of the tenant's data: resources first; the
        feed's state and position stay (the tombstone)."""
        with self._lock:
            t = self._t
            gone = 0
            for key in list(t.entries)[:max(0, limit)]:
                kind, resource_id = key
                self._delete(Kind(kind), resource_id)
                gone += 1
            if not t.entries:
                t.index.clear()
                t.members.clear()
                t.member_of.clear()
                gone += len(t.events)
                t.floor = self._position()
                t.events.clear()
            return gone

    def mark_deleting(self) -> None:
        """Fence the tenant: every later write of any view fails with ``TenantGone``."""
        with self._lock:
            if self._t.tenant_state != DELETED:
                self._t.tenant_state = DELETING

    def mark_deleted(self) -> None:
        """After the purge: the tenant's tombstone."""
        with self._lock:
            self._t.floor = self._position()
            self._t.events.clear()
            self._t.tenant_state = DELETED

    def start_epoch(self, state: str) -> int:
        """Begin a new tenant under this id: the next epoch, its feed numbering on."""
        with self._lock:
            t = self._t
            if t.tenant_state == DELETING:
                raise StorageUnavailable("The tenant's delete is still under way.",
                                         retry_after=1)
            if t.entries or any(t.members.values()) or any(t.member_of.values()):
                raise NotEmpty(f"The tenant {self._name} still holds data.")
            fresh = t.epoch == 0 and t.tenant_state is None and self._position() == 0
            t.floor = 0 if fresh else self._position() + 1
            t.events.clear()
            t.epoch += 1
            t.tenant_state = state
            t.since = uuid.uuid4().hex  # a new listing: no page mark of the old tenant applies
            return t.epoch
