"""An in-memory Store: one lock, plain dictionaries, JSON copies in and out
(docs/architecture.md, "Memory store")."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from scim_core.kinds import Kind
from scim_core.store.base import GROUP, USER, IndexKey, Member, MemberChange, Meta, Record
from scim_core.store.cursor import decode_cursor, encode_cursor
from scim_core.store.errors import KeyTaken, NotStored, UnknownMembers, VersionMoved
from scim_core.tenants.registry import MemoryTenantRegistry


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


class MemoryStore:
    """The Store protocol in process memory; for local runs, tests and benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tenants: dict[str, _Rows] = defaultdict(_Rows)
        self._etags = count(1)
        self._registry = MemoryTenantRegistry()

    def tenant(self, name: str) -> MemoryTenantStore:
        """The view of tenant ``name``."""
        with self._lock:
            return MemoryTenantStore(name, self._tenants[name], self._lock, self._etags)

    def tenant_registry(self) -> MemoryTenantRegistry:
        """The registry of this store's tenants."""
        return self._registry


class MemoryTenantStore:
    """One tenant's rows of a ``MemoryStore``, under the store's one lock."""

    def __init__(self, name: str, rows: _Rows, lock: threading.RLock,
                 etags: Iterator[int]) -> None:
        self._name = name
        self._t = rows
        self._lock = lock
        self._etags = etags

    @property
    def tenant(self) -> str:
        """The tenant this view is bound to."""
        return self._name

    # -- helpers ---------------------------------------------------------------------------

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

    def _apply_members(self, group_id: str, change: MemberChange) -> None:
        current = self._t.members[group_id]
        member_of = self._t.member_of
        if change.remove_all:
            for user_id in current:
                member_of[user_id].discard(group_id)
            current.clear()
        for user_id in change.remove:
            if current.pop(user_id, None) is not None:
                member_of[user_id].discard(group_id)
        for member in change.add:
            current[member.value] = member
            member_of[member.value].add(group_id)

    # -- Store protocol --------------------------------------------------------------------

    def create(self, record: Record, indexes: Sequence[IndexKey],
               members: Sequence[Member] = ()) -> Record:
        """Store a new resource with its index rows (and members, for a group)."""
        with self._lock:
            self._check_unique(record.kind, record.id, indexes)
            if record.kind == GROUP:
                self._check_users(members)
            entry = _Entry(json.dumps(record.document), record.meta, str(next(self._etags)),
                           tuple(indexes))
            self._t.entries[(record.kind, record.id)] = entry
            self._set_indexes(record.kind, record.id, (), indexes)
            if record.kind == GROUP and members:
                self._apply_members(record.id, MemberChange(add=tuple(members)))
            return self._record(record.kind, record.id, entry)

    def get(self, kind: Kind, resource_id: str) -> Record | None:
        """The stored resource, or None."""
        with self._lock:
            entry = self._t.entries.get((kind, resource_id))
            return None if entry is None else self._record(kind, resource_id, entry)

    def update(self, kind: Kind, resource_id: str, *, meta: Meta,
               expected_etag: str | None, document: Mapping[str, Any] | None = None,
               indexes: Sequence[IndexKey] | None = None,
               members: MemberChange | None = None) -> Record:
        """Write new metadata and optionally a document, indexes and member edits."""
        with self._lock:
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
            if members and kind == GROUP:
                self._apply_members(resource_id, members)
            entry.meta = meta
            entry.etag = str(next(self._etags))
            return self._record(kind, resource_id, entry)

    def change_members(self, group_id: str, *, last_modified: str, version: str,
                       members: MemberChange, expected_etag: str | None = None) -> str:
        """Member edits with a new last_modified and version; returns the new etag."""
        with self._lock:
            entry = self._t.entries.get((GROUP, group_id))
            if entry is None:
                raise NotStored(GROUP, group_id)
            meta = Meta(entry.meta.created, last_modified, version)
            return self.update(GROUP, group_id, meta=meta, expected_etag=expected_etag,
                               members=members).etag

    def delete(self, kind: Kind, resource_id: str, *,
               expected_version: str | None = None) -> None:
        """Remove a resource, its index rows and its memberships."""
        with self._lock:
            t = self._t
            entry = t.entries.get((kind, resource_id))
            if entry is None:
                raise NotStored(kind, resource_id)
            if expected_version is not None and entry.meta.version != expected_version:
                raise VersionMoved()
            del t.entries[(kind, resource_id)]
            self._set_indexes(kind, resource_id, entry.indexes, ())
            if kind == GROUP:
                self._apply_members(resource_id, MemberChange(remove_all=True))
                t.members.pop(resource_id, None)
            elif kind == USER:
                for group_id in t.member_of.pop(resource_id, set()):
                    t.members[group_id].pop(resource_id, None)

    def lookup(self, kind: Kind, key: IndexKey) -> list[Record]:
        """The resources whose index holds the key's value."""
        with self._lock:
            ids = sorted(self._t.index.get((kind, key.name, key.value), ()))
            return [self._record(kind, i, self._t.entries[(kind, i)]) for i in ids]

    def scan(self, kind: Kind) -> Iterator[Record]:
        """Every resource of a kind, ordered by id."""
        with self._lock:
            snapshot = sorted((i, e) for (k, i), e in self._t.entries.items() if k == kind)
        return (self._record(kind, i, e) for i, e in snapshot)

    def count(self, kind: Kind) -> int:
        """How many resources of a kind there are."""
        with self._lock:
            return sum(1 for (k, _) in self._t.entries if k == kind)

    def page(self, kind: Kind, *, cursor: str | None,
             size: int) -> tuple[list[Record], str | None]:
        """A page of resources in id order from ``cursor``, and the next cursor."""
        after = decode_cursor(cursor) if cursor else ""
        with self._lock:
            entries = self._t.entries
            ids = sorted(i for (k, i) in entries if k == kind and i > after)
            chosen = [self._record(kind, i, entries[(kind, i)]) for i in ids[:size]]
        more = len(ids) > size
        return chosen, (encode_cursor(chosen[-1].id) if more and chosen else None)

    def members(self, group_id: str) -> Iterator[Member]:
        """A group's members, ordered by user id."""
        with self._lock:
            found = self._t.members.get(group_id, {})
            return iter(sorted(found.values(), key=lambda m: m.value))

    def is_member(self, group_id: str, user_id: str) -> bool:
        """Whether the user is a direct member of the group."""
        with self._lock:
            return user_id in self._t.members.get(group_id, {})

    def groups_of(self, user_id: str) -> list[str]:
        """The ids of the groups a user is a direct member of."""
        with self._lock:
            return sorted(self._t.member_of.get(user_id, ()))

    def purge(self, *, limit: int) -> int:
        """Remove up to ``limit`` rows' worth of the tenant's data: resources first."""
        with self._lock:
            t = self._t
            gone = 0
            for key in list(t.entries)[:max(0, limit)]:
                kind, resource_id = key
                self.delete(Kind(kind), resource_id)
                gone += 1
            if not t.entries:
                t.index.clear()
                t.members.clear()
                t.member_of.clear()
            return gone
