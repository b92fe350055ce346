"""The Store protocol on Azure Table Storage: one partition per tenant, one batch per change.

Keys: ``table_keys``; rows: ``table_entities``; batches: ``table_batches``; guarantees in
full: README.md, "Table layout". A create, and an update's document, index swap and meta,
are one batch with the first membership changes; later ones follow in batches that fail
once the group is gone. A member add requires the user's row in the same batch, so it
needs no read before or after (a change beyond one batch checks its users first, so that
bad input writes nothing). Member-only updates need the group to exist, not an unchanged
etag. A delete removes membership pairs first and the document, index rows and last pairs
in one final batch under If-Match; a member add moves its user's etag, so a user delete
that raced one looks again. Reads are point reads (``get``, ``is_member``, unique
``lookup``) or one RowKey range (``members``, ``groups_of``, non-unique ``lookup``);
``existing`` runs point reads on a small thread pool, since an OR of RowKeys is a
partition scan on Azure. Batches run their per-part SDK policies inline
(``sdk_batches``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from scim_core.config import Settings
from scim_core.errors import InvalidCursor, NotFound, ServiceUnavailable
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
from scim_core.store.tables import keys
from scim_core.store.tables.batches import (
    MAX_BATCH,
    Step,
    Unit,
    add_units,
    added_users,
    chunked,
    document_steps,
    duplicate_of,
    existence_guard,
    if_match,
    index_steps,
    missing_member,
    pack,
    remove_unit,
    row,
    submit,
    table_missing,
)
from scim_core.store.tables.client import table_client
from scim_core.store.tables.entities import (
    document_entity,
    meta_properties,
    record_from_entity,
    stored_document,
    stored_index_rows,
)
from scim_core.store.tables.errors import translating_storage_errors
from scim_core.store.tables.sdk_batches import run_batch_policies_inline

__all__ = ["TableStore", "table_store"]

PAGE_LIMIT = 1000
_ATTEMPTS = 5
_DELETE_ATTEMPTS = 20
_BUSY = "The resource is changing too fast; retry later."


def _etag(entity: TableEntity) -> str:
    return str(entity.metadata["etag"])


class TableStore:
    """Users, groups and memberships of every tenant in one Azure table."""

    def __init__(self, table_client: TableClient, *, read_workers: int = 8) -> None:
        run_batch_policies_inline()
        self._table = table_client
        self._read_workers = read_workers
        self._lock = threading.Lock()
        self._table_ready = False
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._table.close()

    def _ready(self) -> None:
        """Create the table on first use, once per store (the process keeps one store)."""
        if self._table_ready:
            return
        with self._lock:
            if not self._table_ready:
                with contextlib.suppress(ResourceExistsError):
                    self._table.create_table()
                self._table_ready = True

    @contextlib.contextmanager
    def _storage(self) -> Iterator[None]:
        """Storage failures as SCIM errors; a table that vanished (deleted by an operator)
        is created again by the next call instead of failing every call after."""
        try:
            with translating_storage_errors():
                yield
        except ServiceUnavailable as error:
            if isinstance(error.__cause__, Exception) and table_missing(error.__cause__):
                self._table_ready = False
            raise

    def _read(self, partition: str, row_key: str,
              select: list[str] | None = None) -> TableEntity | None:
        try:
            return self._table.get_entity(partition, row_key, select=select)
        except ResourceNotFoundError as error:
            if table_missing(error):
                self._table_ready = False
                raise
            return None

    def _read_many(self, partition: str, rows: Sequence[str],
                   select: list[str] | None = None) -> list[TableEntity | None]:
        if len(rows) <= 1:
            return [self._read(partition, row_key, select) for row_key in rows]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._read_workers,
                                                thread_name_prefix="table-store-read")
        return list(self._pool.map(lambda row_key: self._read(partition, row_key, select), rows))

    def _range(self, partition: str, low: str, high: str, *, after: str | None = None,
               select: list[str] | None = None,
               per_page: int = PAGE_LIMIT) -> Iterable[TableEntity]:
        bound = "RowKey gt @low" if after is not None else "RowKey ge @low"
        return self._table.query_entities(
            f"PartitionKey eq @partition and {bound} and RowKey lt @high",
            parameters={"partition": partition, "low": after if after is not None else low,
                        "high": high},
            select=select,
            results_per_page=per_page,
        )

    def _submit_all(self, batches: Sequence[Sequence[Step]]) -> None:
        for batch in batches:
            submit(self._table, batch)

    def _submit_later(self, batches: Sequence[Sequence[Step]], kind: str,
                      resource_id: str) -> str | None:
        """A change's batches after the first, each led by the existence guard; a member
        whose user was deleted since the change began is left out. Returns the resource
        row's etag after the last of them (None when there are none)."""
        etag = None
        try:
            for batch in batches:
                etag = str(submit(self._table, batch, drop_missing_members=True)[0]["etag"])
        except TableTransactionError as error:
            if error.status_code == 404 and error.index == 0:
                raise NotFound(f"{kind} {resource_id} was deleted during the change") from None
            raise
        return etag

    def _member_ids(self, partition: str, group_id: str) -> list[str]:
        low, high = keys.members_range(group_id)
        return [entity["userId"]
                for entity in self._range(partition, low, high, select=["userId"])]

    def _group_ids(self, partition: str, user_id: str) -> list[str]:
        low, high = keys.member_of_range(user_id)
        return [entity["groupId"]
                for entity in self._range(partition, low, high, select=["groupId"])]

    def _membership_units(self, partition: str, group_id: str,
                          change: MemberChange | None) -> list[Unit]:
        """Clear, remove, then add: a user both removed and added stays a member."""
        if not change:
            return []
        added = {member.value for member in change.add}
        removed = set(change.remove)
        if change.remove_all:
            removed.update(self._member_ids(partition, group_id))
        units = [remove_unit(partition, group_id, user_id)
                 for user_id in sorted(removed - added)]
        return units + add_units(partition, group_id, change.add)

    def _existing(self, partition: str, kind: str, ids: Collection[str]) -> set[str]:
        wanted = sorted(set(ids))
        found = self._read_many(partition, [keys.document_key(kind, i) for i in wanted],
                                select=["id"])
        return {resource_id for resource_id, entity in zip(wanted, found, strict=True)
                if entity is not None}

    def _check_users(self, partition: str, batches: Sequence[Sequence[Step]]) -> None:
        """Before a change of several batches: every added user must exist, since a later
        batch cannot undo the earlier ones. One batch checks its users itself."""
        added = added_users(batches) if len(batches) > 1 else set()
        missing = added - self._existing(partition, USER, added) if added else set()
        if missing:
            raise UnknownMembers(missing)

    def _unknown_members(self, partition: str, error: TableTransactionError,
                         batches: Sequence[Sequence[Step]]) -> None:
        """Raise ``UnknownMembers`` (naming every missing user) when ``error``, the failure
        of the first of ``batches``, is a member add that found no user."""
        gone = missing_member(error, batches[0])
        if gone is not None:
            added = added_users(batches)
            raise UnknownMembers((added - self._existing(partition, USER, added))
                                 or {gone}) from None

    def _duplicate(self, partition: str, steps: Sequence[Step], index: int,
                   resource_id: str) -> DuplicateKey:
        def owner(row_key: str) -> str | None:
            found = self._read(partition, row_key, select=["id"])
            return None if found is None else str(found["id"])

        return duplicate_of(steps, index, resource_id, owner)

    def _documents(self, partition: str, kind: str, ids: Sequence[str]) -> list[Record]:
        found = self._read_many(partition, [keys.document_key(kind, i) for i in ids])
        return [record_from_entity(kind, entity, _etag(entity))
                for entity in found if entity is not None]

    def create(self, tenant: str, record: Record, indexes: Sequence[IndexKey],
               members: Sequence[Member] = ()) -> Record:
        partition = keys.partition_key(tenant)
        indexed = index_steps(partition, record.kind, record.id, indexes)
        entity = document_entity(
            partition, keys.document_key(record.kind, record.id), kind=record.kind,
            resource_id=record.id, document=record.document, meta=record.meta,
            index_rows=list(indexed))
        head = [Step("create", entity), *indexed.values()]
        members = members if record.kind == GROUP else ()
        guard = existence_guard(partition, entity["RowKey"], meta_properties(record.meta))
        first, *later = batches = pack(head, add_units(partition, record.id, members), guard)
        with self._storage():
            self._ready()
            self._check_users(partition, batches)
            try:
                results = submit(self._table, first)
            except TableTransactionError as error:
                if error.status_code == 409:
                    raise self._duplicate(partition, first, error.index, record.id) from None
                self._unknown_members(partition, error, batches)
                raise
            self._submit_later(later, record.kind, record.id)
        return Record(record.kind, record.id, stored_document(entity), record.meta,
                      str(results[0]["etag"]))

    def get(self, tenant: str, kind: str, resource_id: str) -> Record | None:
        with self._storage():
            self._ready()
            entity = self._read(keys.partition_key(tenant), keys.document_key(kind, resource_id))
        return None if entity is None else record_from_entity(kind, entity, _etag(entity))

    def _write_first(self, partition: str, kind: str, resource_id: str,
                     batches: Sequence[Sequence[Step]], *, conditional: bool) -> str | None:
        """Submit an update's first batch; its new etag, or None when a read-then-write
        without the caller's etag lost a race and should be tried again."""
        first = batches[0]
        try:
            self._check_users(partition, batches)
        except UnknownMembers:
            # The first batch would report a missing resource before a missing user.
            if self._read(partition, keys.document_key(kind, resource_id), select=["id"]) is None:
                raise NotFound(f"{kind} {resource_id} not found") from None
            raise
        try:
            return str(submit(self._table, first)[0]["etag"])
        except TableTransactionError as error:
            if error.status_code == 404 and error.index == 0:
                raise NotFound(f"{kind} {resource_id} not found") from None
            self._unknown_members(partition, error, batches)
            if error.status_code == 412:
                if conditional:
                    raise VersionMismatch() from None
                return None
            if error.status_code == 409:
                raise self._duplicate(partition, first, error.index, resource_id) from None
            raise

    def _write_meta(self, partition: str, kind: str, resource_id: str,
                    meta: Mapping[str, str], expected_etag: str | None,
                    change: MemberChange | None) -> str:
        """Meta properties and members only: the group must exist (If-Match: * unless the
        caller gave an etag), but concurrent member edits do not contend for its etag.
        Returns the row's etag after the last batch."""
        document_row = keys.document_key(kind, resource_id)
        condition = if_match(expected_etag) if expected_etag is not None else {}
        merge = Step("update", row(partition, document_row, **meta),
                     {"mode": UpdateMode.MERGE, **condition})
        guard = existence_guard(partition, document_row, meta)
        first, *later = pack([merge], self._membership_units(partition, resource_id, change),
                             guard)
        etag = self._write_first(partition, kind, resource_id, [first, *later],
                                 conditional=expected_etag is not None)
        return self._submit_later(later, kind, resource_id) or etag or ""

    def change_members(self, tenant: str, group_id: str, *, last_modified: str, version: str,
                       members: MemberChange) -> str:
        with self._storage():
            self._ready()
            return self._write_meta(keys.partition_key(tenant), GROUP, group_id,
                                    {"lastModified": last_modified, "version": version}, None,
                                    members)

    def update(self, tenant: str, kind: str, resource_id: str, *, meta: Meta,
               expected_etag: str | None, document: Mapping[str, Any] | None = None,
               indexes: Sequence[IndexKey] | None = None,
               members: MemberChange | None = None) -> Record:
        partition = keys.partition_key(tenant)
        document_row = keys.document_key(kind, resource_id)
        change = members if members and kind == GROUP else None
        with self._storage():
            self._ready()
            if document is None:
                self._write_meta(partition, kind, resource_id, meta_properties(meta),
                                 expected_etag, change)
                current = self._read(partition, document_row)
                if current is None:
                    raise NotFound(f"{kind} {resource_id} not found")
                return record_from_entity(kind, current, _etag(current))
            guard = existence_guard(partition, document_row, meta_properties(meta))
            for _ in range(_ATTEMPTS):
                current = self._read(partition, document_row)
                if current is None:
                    raise NotFound(f"{kind} {resource_id} not found")
                # The index swap is computed from this read, so the write is conditional on
                # it even when the caller gave no etag; a lost race reads again.
                etag = expected_etag if expected_etag is not None else _etag(current)
                head, stored = document_steps(partition, kind, resource_id, current, etag,
                                              meta=meta, document=document, indexes=indexes)
                first, *later = pack(head, self._membership_units(partition, resource_id,
                                                                  change), guard)
                written = self._write_first(partition, kind, resource_id, [first, *later],
                                            conditional=expected_etag is not None)
                if written is not None:
                    self._submit_later(later, kind, resource_id)
                    return Record(kind, resource_id, stored, meta, written)
        raise ServiceUnavailable(_BUSY, retry_after=1)

    def delete(self, tenant: str, kind: str, resource_id: str) -> None:
        partition = keys.partition_key(tenant)
        document_row = keys.document_key(kind, resource_id)
        with self._storage():
            self._ready()
            # Member edits move a group's etag without touching its index rows, so a busy
            # group can need several rounds before its delete lands.
            for _ in range(_DELETE_ATTEMPTS):
                current = self._read(partition, document_row, select=["indexRows"])
                if current is None:
                    raise NotFound(f"{kind} {resource_id} not found")
                final = [Step("delete", row(partition, document_row), if_match(_etag(current)))]
                final += [Step("delete", row(partition, index_row), optional=True)
                          for index_row in stored_index_rows(current)]
                pairs = self._relations(partition, kind, resource_id)
                # the last pairs ride with the document; earlier ones go first, whole pairs
                lead = len(pairs) - min(len(pairs), (MAX_BATCH - len(final)) // 2)
                self._submit_all(chunked(pairs[:lead]))
                try:
                    submit(self._table, pack(final, pairs[lead:])[0])
                except TableTransactionError as error:
                    if error.status_code == 404 and error.index == 0:
                        raise NotFound(f"{kind} {resource_id} not found") from None
                    if error.status_code == 412:
                        continue
                    raise
                return
        raise ServiceUnavailable(_BUSY, retry_after=1)

    def _relations(self, partition: str, kind: str, resource_id: str) -> list[Unit]:
        """Removals of every membership of a group or a user."""
        if kind == GROUP:
            return [remove_unit(partition, resource_id, user_id)
                    for user_id in self._member_ids(partition, resource_id)]
        return [remove_unit(partition, group_id, resource_id)
                for group_id in self._group_ids(partition, resource_id)]

    def lookup(self, tenant: str, kind: str, key: IndexKey) -> list[Record]:
        partition = keys.partition_key(tenant)
        with self._storage():
            self._ready()
            if key.unique:
                found = self._read(partition, keys.unique_index_key(kind, key.name, key.value),
                                   select=["id", "value"])
                matches = [found] if found is not None else []
            else:
                low, high = keys.index_range(kind, key.name, key.value)
                matches = list(self._range(partition, low, high, select=["id", "value"]))
            # a hashed key component could collide; the stored value cannot
            ids = sorted({entity["id"] for entity in matches if entity.get("value") == key.value})
            return self._documents(partition, kind, ids)

    def scan(self, tenant: str, kind: str) -> Iterator[Record]:
        low, high = keys.documents_range(kind)
        with self._storage():
            self._ready()
            for entity in self._range(keys.partition_key(tenant), low, high):
                yield record_from_entity(kind, entity, _etag(entity))

    def page(self, tenant: str, kind: str, *, cursor: str | None,
             size: int) -> tuple[list[Record], str | None]:
        # The cursor holds the last RowKey served (Table's NextRowKey marker, one row
        # earlier): reading size + 1 rows tells exactly whether another page exists.
        low, high = keys.documents_range(kind)
        after = None
        if cursor:
            after = decode_cursor(cursor)
            if not (after.startswith(low) and after < high):
                raise InvalidCursor("The cursor is not valid.")
        if size <= 0:
            return [], None
        partition = keys.partition_key(tenant)
        with self._storage():
            self._ready()
            rows = list(islice(self._range(partition, low, high, after=after,
                                           per_page=min(size + 1, PAGE_LIMIT)), size + 1))
        records = [record_from_entity(kind, entity, _etag(entity)) for entity in rows[:size]]
        more = len(rows) > size
        return records, (encode_cursor(rows[size - 1]["RowKey"]) if more else None)

    def members(self, tenant: str, group_id: str) -> Iterator[Member]:
        low, high = keys.members_range(group_id)
        with self._storage():
            self._ready()
            for entity in self._range(keys.partition_key(tenant), low, high,
                                      select=["userId", "display"]):
                yield Member(entity["userId"], entity.get("display"))

    def is_member(self, tenant: str, group_id: str, user_id: str) -> bool:
        with self._storage():
            self._ready()
            found = self._read(keys.partition_key(tenant), keys.member_key(group_id, user_id),
                               select=["userId"])
        return found is not None

    def groups_of(self, tenant: str, user_id: str) -> list[str]:
        with self._storage():
            self._ready()
            return sorted(self._group_ids(keys.partition_key(tenant), user_id))

    def existing(self, tenant: str, kind: str, ids: Collection[str]) -> set[str]:
        with self._storage():
            self._ready()
            return self._existing(keys.partition_key(tenant), kind, ids)


def table_store(settings: Settings, *, credential: TokenCredential | None = None,
                **client_kwargs: Any) -> TableStore:
    """The store for ``settings``; the process should build it once (it creates the table
    on first use). ``client_kwargs`` override ``table_client.PRODUCTION_CLIENT_OPTIONS``."""
    return TableStore(table_client(settings, credential=credential, **client_kwargs))

