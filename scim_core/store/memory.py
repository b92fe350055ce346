"""An in-memory Store: one lock, plain dictionaries, JSON copies in and out.

Documents are kept as JSON text so that callers can never alias stored state.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from scim_core.errors import NotFound
from scim_core.store.base import (
    GROUP,
    USER,
    DuplicateKey,
    IndexKey,
    Member,
    MemberChange,
    Meta,
    Record,
    UnknownMembers,
    VersionMismatch,
)
from scim_core.store.cursor import decode_cursor, encode_cursor


@dataclass
class _Entry:
    document: str
    meta: Meta
    etag: str
    indexes: tuple[IndexKey, ...]


@dataclass
class _Tenant:
    entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    index: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    members: dict[str, dict[str, Member]] = field(default_factory=lambda: defaultdict(dict))
    member_of: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


class MemoryStore:
    """The Store protocol in process memory; for local runs, tests and benchmarks."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tenants: dict[str, _Tenant] = defaultdict(_Tenant)
        self._etags = count(1)

    # -- helpers ---------------------------------------------------------------------------

    def _record(self, kind: str, resource_id: str, entry: _Entry) -> Record:
        return Record(kind, resource_id, json.loads(entry.document), entry.meta, entry.etag)

    def _check_unique(self, t: _Tenant, kind: str, resource_id: str,
                      indexes: Sequence[IndexKey]) -> None:
        for key in indexes:
            if key.unique and t.index.get((kind, key.name, key.value), set()) - {resource_id}:
                raise DuplicateKey(key)

    def _set_indexes(self, t: _Tenant, kind: str, resource_id: str,
                     old: Sequence[IndexKey], new: Sequence[IndexKey]) -> None:
        for key in old:
            ids = t.index.get((kind, key.name, key.value))
            if ids is not None:
                ids.discard(resource_id)
                if not ids:
                    del t.index[(kind, key.name, key.value)]
        for key in new:
            t.index[(kind, key.name, key.value)].add(resource_id)

    @staticmethod
    def _check_users(t: _Tenant, added: Sequence[Member]) -> None:
        missing = {m.value for m in added if (USER, m.value) not in t.entries}
        if missing:
            raise UnknownMembers(missing)

    def _apply_members(self, t: _Tenant, group_id: str, change: MemberChange) -> None:
        current = t.members[group_id]
        if change.remove_all:
            for user_id in current:
                t.member_of[user_id].discard(group_id)
            current.clear()
        for user_id in change.remove:
            if current.pop(user_id, None) is not None:
                t.member_of[user_id].discard(group_id)
        for member in change.add:
            current[member.value] = member
            t.member_of[member.value].add(group_id)

    # -- Store protocol --------------------------------------------------------------------

    def create(self, tenant: str, record: Record, indexes: Sequence[IndexKey],
               members: Sequence[Member] = ()) -> Record:
        with self._lock:
            t = self._tenants[tenant]
            self._check_unique(t, record.kind, record.id, indexes)
            if record.kind == GROUP:
                self._check_users(t, members)
            entry = _Entry(json.dumps(record.document), record.meta, str(next(self._etags)),
                           tuple(indexes))
            t.entries[(record.kind, record.id)] = entry
            self._set_indexes(t, record.kind, record.id, (), indexes)
            if record.kind == GROUP and members:
                self._apply_members(t, record.id, MemberChange(add=tuple(members)))
            return self._record(record.kind, record.id, entry)

    def get(self, tenant: str, kind: str, resource_id: str) -> Record | None:
        with self._lock:
            entry = self._tenants[tenant].entries.get((kind, resource_id))
            return None if entry is None else self._record(kind, resource_id, entry)

    def update(self, tenant: str, kind: str, resource_id: str, *, meta: Meta,
               expected_etag: str | None, document: Mapping[str, Any] | None = None,
               indexes: Sequence[IndexKey] | None = None,
               members: MemberChange | None = None) -> Record:
        with self._lock:
            t = self._tenants[tenant]
            entry = t.entries.get((kind, resource_id))
            if entry is None:
                raise NotFound(f"{kind} {resource_id} not found")
            if expected_etag is not None and entry.etag != expected_etag:
                raise VersionMismatch()
            new_indexes = entry.indexes if indexes is None or document is None else tuple(indexes)
            self._check_unique(t, kind, resource_id, new_indexes)
            if members and kind == GROUP:
                self._check_users(t, members.add)
            if document is not None:
                self._set_indexes(t, kind, resource_id, entry.indexes, new_indexes)
                entry.document = json.dumps(document)
                entry.indexes = new_indexes
            if members and kind == GROUP:
                self._apply_members(t, resource_id, members)
            entry.meta = meta
            entry.etag = str(next(self._etags))
            return self._record(kind, resource_id, entry)

    def change_members(self, tenant: str, group_id: str, *, last_modified: str, version: str,
                       members: MemberChange) -> str:
        with self._lock:
            entry = self._tenants[tenant].entries.get((GROUP, group_id))
            if entry is None:
                raise NotFound(f"{GROUP} {group_id} not found")
            meta = Meta(entry.meta.created, last_modified, version)
            return self.update(tenant, GROUP, group_id, meta=meta, expected_etag=None,
                               members=members).etag

    def delete(self, tenant: str, kind: str, resource_id: str) -> None:
        with self._lock:
            t = self._tenants[tenant]
            entry = t.entries.pop((kind, resource_id), None)
            if entry is None:
                raise NotFound(f"{kind} {resource_id} not found")
            self._set_indexes(t, kind, resource_id, entry.indexes, ())
            if kind == GROUP:
                self._apply_members(t, resource_id, MemberChange(remove_all=True))
                t.members.pop(resource_id, None)
            elif kind == USER:
                for group_id in t.member_of.pop(resource_id, set()):
                    t.members[group_id].pop(resource_id, None)

    def lookup(self, tenant: str, kind: str, key: IndexKey) -> list[Record]:
        with self._lock:
            t = self._tenants[tenant]
            ids = sorted(t.index.get((kind, key.name, key.value), ()))
            return [self._record(kind, i, t.entries[(kind, i)]) for i in ids]

    def scan(self, tenant: str, kind: str) -> Iterator[Record]:
        with self._lock:
            t = self._tenants[tenant]
            snapshot = sorted((i, e) for (k, i), e in t.entries.items() if k == kind)
        return (self._record(kind, i, e) for i, e in snapshot)

    def page(self, tenant: str, kind: str, *, cursor: str | None,
             size: int) -> tuple[list[Record], str | None]:
        after = decode_cursor(cursor) if cursor else ""
        with self._lock:
            t = self._tenants[tenant]
            ids = sorted(i for (k, i) in t.entries if k == kind and i > after)
            chosen = [self._record(kind, i, t.entries[(kind, i)]) for i in ids[:size]]
        more = len(ids) > size
        return chosen, (encode_cursor(chosen[-1].id) if more and chosen else None)

    def members(self, tenant: str, group_id: str) -> Iterator[Member]:
        with self._lock:
            found = self._tenants[tenant].members.get(group_id, {})
            return iter(sorted(found.values(), key=lambda m: m.value))

    def is_member(self, tenant: str, group_id: str, user_id: str) -> bool:
        with self._lock:
            return user_id in self._tenants[tenant].members.get(group_id, {})

    def groups_of(self, tenant: str, user_id: str) -> list[str]:
        with self._lock:
            return sorted(self._tenants[tenant].member_of.get(user_id, ()))

    def existing(self, tenant: str, kind: str, ids: Collection[str]) -> set[str]:
        with self._lock:
            entries = self._tenants[tenant].entries
            return {i for i in ids if (kind, i) in entries}
