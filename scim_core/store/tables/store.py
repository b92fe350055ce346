"""The Store protocol on Azure Table Storage: one partition per tenant, one batch per change
(docs/architecture.md, "Table Storage store")."""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar, cast

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode

from scim_core.config import Settings
from scim_core.events.model import Event, EventDraft
from scim_core.kinds import Kind
from scim_core.retry import DELETE_RACE, STORE_RACE
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
    TenantGone,
    UnknownMembers,
    VersionMoved,
)
from scim_core.store.lifecycle import DELETED, DELETING, check_live
from scim_core.store.marks import Marks
from scim_core.store.tables import keys
from scim_core.store.tables.batches import (
    FEED_RESERVE,
    MAX_BATCH,
    Step,
    Unit,
    add_units,
    added_users,
    chunked,
    copy_into,
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
)
from scim_core.store.tables.client import table_client
from scim_core.store.tables.entities import (
    document_entity,
    has_copy,
    meta_properties,
    record_from_entity,
    stored_document,
    stored_index_rows,
)
from scim_core.store.tables.errors import Failure, StepFailed, failure_of, storage_errors
from scim_core.store.tables.feed import (
    EVENTS_END,
    FEED_ROW,
    Counts,
    Feeds,
    FeedWrite,
    OnCommit,
    event_from_entity,
    event_key,
    membership_events,
)
from scim_core.store.tables.tenants import TableTenantRegistry

if TYPE_CHECKING:
    from azure.core.paging import PageIterator

__all__ = ["TableStore", "TableTenantStore", "table_store"]

PAGE_LIMIT = 1000
POINT_READ_LIMIT = 32
"""Up to this many rows are checked for existence by point reads, more by range queries."""
SCAN_PAGE = 100
"""Documents per storage request of a scan: what a filter that does not plan holds at once."""
_BUSY = "The resource is changing too fast; retry later."
COPIES = frozenset({USER})
"""Kinds whose unique index rows carry a copy of the document, so that a lookup by a unique
value (Entra's ``userName eq``) is one read. Not groups: a member change rewrites a group's
meta without its document, and a user's delete stamps its groups unread, so their copies
would have to be found and rewritten by writes that today read nothing."""

T = TypeVar("T")


CLOCK_MARGIN = timedelta(seconds=1)
"""What ``_written_before`` allows for storage's clocks (the Date of a response and the
Timestamp of a row may come from different machines)."""


def _etag(entity: TableEntity) -> str:
    return str(entity.metadata["etag"])


def _written_before(entity: TableEntity, dates: Sequence[str], elapsed: float) -> bool:
    """Whether ``entity``'s last write is certainly older than any storage request sent
    after the one that read it was: older, by ``CLOCK_MARGIN``, than its answer's Date
    less the ``elapsed`` seconds from before those requests were sent to that answer."""
    written = entity.metadata.get("timestamp")
    if not dates or not dates[-1] or not isinstance(written, datetime):
        return False
    try:  # an RFC 1123 date is 29 characters (a proxy may have joined two Date headers)
        answered = parsedate_to_datetime(dates[-1][:29])
    except (TypeError, ValueError):
        return False
    if answered.tzinfo is None or written.tzinfo is None:
        return False
    return written < answered - timedelta(seconds=elapsed) - CLOCK_MARGIN


class TableStore:
    """Users, groups and memberships of every tenant in one Azure table, one partition
    per tenant; ``tenant(name)`` is the view the service uses."""

    def __init__(self, table_client: TableClient, *, read_workers: int = 8,
                 on_commit: OnCommit | None = None) -> None:
        self.table = table_client
        self.feeds = Feeds(table_client, on_commit=on_commit)
        self.marks = Marks()
        self._read_workers = read_workers
        self._lock = threading.Lock()
        self._table_ready = False
        self._pool: ThreadPoolExecutor | None = None

    def tenant(self, name: str, epoch: int | None = None) -> TableTenantStore:
        """The view of tenant ``name`` (its partition); with ``epoch``, of that tenant only
        (a view of a tenant since deleted, or of an earlier tenant of the id, raises
        ``TenantGone``)."""
        return TableTenantStore(self, name, epoch)

    def tenant_registry(self) -> TableTenantRegistry:
        """The registry of this store's tenants (rows outside every tenant's partition)."""
        return TableTenantRegistry(self)

    def close(self) -> None:
        """Stop the read pool and close the table client."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.table.close()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """One store call: the table exists (created on first use), storage failures become
        the store's own, and a table that vanished (deleted by an operator) is created again
        by the next call instead of failing every call after."""
        try:
            with storage_errors():
                self._ready()
                yield
        except StorageUnavailable as error:
            if failure_of(error.__cause__ or error) is Failure.TABLE_MISSING:
                self._table_ready = False
            raise

    def _ready(self) -> None:
        if self._table_ready:
            return
        with self._lock:
            if not self._table_ready:
                try:
                    self.table.create_table()
                except ResourceExistsError:
                    pass
                except HttpResponseError as error:
                    # An identity whose role is scoped to this table (infra/) may use it
                    # but not create tables; the template created it.
                    if error.status_code != 403:
                        raise
                self._table_ready = True

    def read(self, partition: str, row_key: str, select: list[str] | None = None,
             **options: Any) -> TableEntity | None:
        """A point read (``options`` go to the request); None when the entity is not
        there."""
        try:
            return self.table.get_entity(partition, row_key, select=select, **options)
        except ResourceNotFoundError as error:
            if failure_of(error) is Failure.TABLE_MISSING:
                self._table_ready = False
                raise
            return None

    def read_many(self, partition: str, rows: Sequence[str],
                  select: list[str] | None = None) -> list[TableEntity | None]:
        """Point reads of ``rows`` on a small pool (an OR of RowKeys scans the partition)."""
        if len(rows) <= 1:
            return [self.read(partition, row_key, select) for row_key in rows]
        return list(self._read_pool().map(lambda row_key: self.read(partition, row_key, select),
                                          rows))

    def alongside(self, call: Callable[[], T]) -> Future[T]:
        """``call`` started on the read pool, for a read that does not depend on the one the
        caller makes meanwhile (so the two cost one round trip, not two)."""
        return self._read_pool().submit(call)

    def _read_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._read_workers,
                                                thread_name_prefix="table-store-read")
            return self._pool

    def present(self, partition: str, row_keys: Iterable[str]) -> set[str]:
        """Which of ``row_keys`` exist. Up to ``POINT_READ_LIMIT`` keys: point reads on the
        pool. More: the sorted keys in up to ``read_workers`` slices (of at least that many
        keys) on the pool, each walked with range queries of RowKeys (``_present_in``), so
        the requests are at most the keys, and at most the slices plus one per 1,000 rows
        between the first key and the last, however many of the keys are missing."""
        wanted = sorted(set(row_keys))
        if len(wanted) <= POINT_READ_LIMIT:
            found = self.read_many(partition, wanted, select=["RowKey"])
            return {key for key, entity in zip(wanted, found, strict=True) if entity is not None}
        size = max(POINT_READ_LIMIT, -(-len(wanted) // self._read_workers))
        slices = [wanted[at:at + size] for at in range(0, len(wanted), size)]
        present: set[str] = set()
        for part in self._read_pool().map(lambda keys: self._present_in(partition, keys),
                                          slices):
            present |= part
        return present

    def _present_in(self, partition: str, wanted: Sequence[str]) -> set[str]:
        """Which of the sorted ``wanted`` exist: one page of the RowKeys from the first key
        not yet decided to the last; every key up to the page's last row is decided by it,
        and the next query skips the rows between that one and the next undecided key."""
        found: set[str] = set()
        asked = set(wanted)
        start = 0
        while start < len(wanted):
            pages = cast("PageIterator[TableEntity]", self.table.query_entities(
                "PartitionKey eq @partition and RowKey ge @low and RowKey le @high",
                parameters={"partition": partition, "low": wanted[start], "high": wanted[-1]},
                select=["RowKey"], results_per_page=PAGE_LIMIT).by_page())
            rows: list[str] = []
            for page in pages:  # storage may answer an empty page with a continuation
                rows = [str(entity["RowKey"]) for entity in page]
                if rows:
                    break
            found.update(key for key in rows if key in asked)
            if not rows or pages.continuation_token is None:
                break
            start = bisect.bisect_right(wanted, rows[-1], lo=start)
        return found

    def range(self, partition: str, low: str, high: str, *, after: str | None = None,
              select: list[str] | None = None,
              per_page: int = PAGE_LIMIT) -> Iterable[TableEntity]:
        """The rows with ``low <= RowKey < high`` (or ``after < RowKey``), in key order."""
        bound = "RowKey gt @low" if after is not None else "RowKey ge @low"
        return self.table.query_entities(
            f"PartitionKey eq @partition and {bound} and RowKey lt @high",
            parameters={"partition": partition, "low": after if after is not None else low,
                        "high": high},
            select=select,
            results_per_page=per_page,
        )


class TableTenantStore:
    """One tenant's partition of a ``TableStore``: the Store protocol for that tenant."""

    def __init__(self, store: TableStore, tenant: str, epoch: int | None = None) -> None:
        self._store = store
        self._table = store.table
        self._name = tenant
        self._partition = keys.partition_key(tenant)
        self._epoch = epoch

    @property
    def tenant(self) -> str:
        """The tenant this view is bound to."""
        return self._name

    # -- helpers ---------------------------------------------------------------------------

    def _record(self, kind: Kind, entity: TableEntity) -> Record:
        """The record a document row holds; ``TenantGone`` when the row is another epoch's
        (the id names a new tenant since this view's tenant was deleted)."""
        self._check_epoch(entity)
        return record_from_entity(kind, entity, _etag(entity))

    def _copied(self, kind: Kind, entity: TableEntity) -> Record:
        """The record a unique index row's copy holds, fenced as its document row would be
        (the copy carries the document row's epoch); its etag is unknown ("")."""
        self._check_epoch(entity)
        return record_from_entity(kind, entity, "", index_rows=False)

    def _check_epoch(self, entity: TableEntity) -> None:
        if self._epoch is not None and int(entity.get("epoch") or 0) != self._epoch:
            raise TenantGone()

    def _stamped(self, entity: dict[str, Any]) -> dict[str, Any]:
        """A document row that records the epoch of the tenant it belongs to."""
        if self._epoch:
            entity["epoch"] = self._epoch
        return entity

    def _confirm(self) -> None:
        """After a read that found nothing: ``TenantGone`` when the tenant is gone (its
        partition may have been purged after this process cached it). One point read of
        the feed row, paid on empty answers only."""
        if self._epoch is not None:
            head = self._store.feeds.read(self._partition)
            check_live(head.tenant_state, head.epoch if head.etag else self._epoch,
                       self._epoch)

    def _not_stored(self, kind: Kind, resource_id: str) -> NotStored:
        """``NotStored``, once ``_confirm`` has found the tenant still there."""
        self._confirm()
        return NotStored(kind, resource_id)

    def _read(self, row_key: str, select: list[str] | None = None,
              **options: Any) -> TableEntity | None:
        return self._store.read(self._partition, row_key, select, **options)

    def _range(self, low: str, high: str, **options: Any) -> Iterable[TableEntity]:
        return self._store.range(self._partition, low, high, **options)

    def _members_feed(self, meta: Meta, events: Sequence[EventDraft] = (), *,
                      implied: str | None = None, quiet_is_nothing: bool = False) -> FeedWrite:
        """A batch's feed: ``events``, then the membership events of its steps."""
        return FeedWrite(self._store.feeds, self._partition, self._name,
                         lambda steps: [*events, *membership_events(
                             steps, time=meta.last_modified, version=meta.version,
                             implied=implied)],
                         quiet_is_nothing=quiet_is_nothing, epoch=self._epoch)

    def _submit_later(self, batches: Sequence[Sequence[Step]], kind: Kind,
                      resource_id: str, meta: Meta) -> str | None:
        """A change's batches after the first, each led by the existence guard; a member
        whose user was deleted since the change began is left out. Returns the resource
        row's etag after the last of them (None when there are none)."""
        etag = None
        try:
            for batch in batches:
                results = submit(self._table, batch, drop_missing_members=True,
                                 feed=self._members_feed(meta, quiet_is_nothing=True))
                etag = str(results[0]["etag"]) if results else etag
        except StepFailed as error:
            if failure_of(error) is Failure.MISSING and error.index == 0:
                raise self._not_stored(kind, resource_id) from None
            raise
        return etag

    def _member_ids(self, group_id: str) -> list[str]:
        low, high = keys.members_range(group_id)
        return [entity["userId"] for entity in self._range(low, high, select=["userId"])]

    def _member_list(self, group_id: str) -> list[Member]:
        low, high = keys.members_range(group_id)
        return [Member(entity["userId"], entity.get("display"))
                for entity in self._range(low, high, select=["userId", "display"])]

    def _group_ids(self, user_id: str) -> list[str]:
        low, high = keys.member_of_range(user_id)
        return [entity["groupId"] for entity in self._range(low, high, select=["groupId"])]

    def _membership_units(self, group_id: str, change: MemberChange | None) -> list[Unit]:
        """Clear, remove, then add: a user both removed and added stays a member."""
        if not change:
            return []
        added = {member.value for member in change.add}
        removed = set(change.remove)
        if change.remove_all:
            removed.update(self._member_ids(group_id))
        units = [remove_unit(self._partition, group_id, user_id)
                 for user_id in sorted(removed - added)]
        return units + add_units(self._partition, group_id, change.add)

    def _stored_users(self, ids: set[str]) -> set[str]:
        """Which of ``ids`` are users of the tenant, in requests that grow with the number
        of batches the ids fill, not with how many of them are missing
        (``TableStore.present``)."""
        rows = {keys.document_key(USER, user_id): user_id for user_id in ids}
        return {rows[row_key] for row_key in self._store.present(self._partition, rows)}

    def _check_users(self, batches: Sequence[Sequence[Step]]) -> None:
        """Before a change of several batches: every added user must exist, since a later
        batch cannot undo the earlier ones. One batch checks its users itself."""
        added = added_users(batches) if len(batches) > 1 else set()
        missing = added - self._stored_users(added) if added else set()
        if missing:
            raise UnknownMembers(missing)

    def _unknown_members(self, error: StepFailed,
                         batches: Sequence[Sequence[Step]]) -> None:
        """Raise ``UnknownMembers`` (naming every missing user) when ``error``, the failure
        of the first of ``batches``, is a member add that found no user."""
        gone = missing_member(error, batches[0])
        if gone is not None:
            added = added_users(batches)
            raise UnknownMembers((added - self._stored_users(added)) or {gone}) from None

    def _duplicate(self, steps: Sequence[Step], index: int, resource_id: str) -> KeyTaken:
        def owner(row_key: str) -> str | None:
            found = self._read(row_key, select=["id"])
            return None if found is None else str(found["id"])

        return duplicate_of(steps, index, resource_id, owner)

    def _documents(self, kind: Kind, ids: Sequence[str]) -> list[Record]:
        found = self._store.read_many(self._partition,
                                      [keys.document_key(kind, i) for i in ids])
        return [self._record(kind, entity) for entity in found if entity is not None]

    def _write_first(self, kind: Kind, resource_id: str, batches: Sequence[Sequence[Step]],
                     *, conditional: bool, feed: FeedWrite) -> str | None:
        """Submit an update's first batch; its new etag ("" when it changed nothing and was
        not sent), or None when a read-then-write without the caller's etag lost a race
        and should be tried again."""
        first = batches[0]
        try:
            self._check_users(batches)
        except UnknownMembers:
            # The first batch would report a missing resource before a missing user.
            if self._read(keys.document_key(kind, resource_id), select=["id"]) is None:
                raise self._not_stored(kind, resource_id) from None
            raise
        try:
            results = submit(self._table, first, feed=feed)
            return str(results[0]["etag"]) if results else ""
        except StepFailed as error:
            failure = failure_of(error)
            if failure is Failure.MISSING and error.index == 0:
                raise self._not_stored(kind, resource_id) from None
            self._unknown_members(error, batches)
            if failure is Failure.MOVED:
                if conditional:
                    raise VersionMoved() from None
                return None
            if failure is Failure.TAKEN:
                raise self._duplicate(first, error.index, resource_id) from None
            raise

    def _write_meta(self, kind: Kind, resource_id: str, meta: Meta,
                    expected_etag: str | None, change: MemberChange | None,
                    events: Sequence[EventDraft]) -> str | None:
        """Meta properties and members only: the group must exist (If-Match: * unless the
        caller gave an etag), but concurrent member edits do not contend for its etag.
        Returns the row's etag after the last batch, or None when no batch changed a
        membership (and none was written)."""
        document_row = keys.document_key(kind, resource_id)
        condition = if_match(expected_etag) if expected_etag is not None else {}
        properties = {"lastModified": meta.last_modified, "version": meta.version}
        merge = Step("update", row(self._partition, document_row, **properties),
                     {"mode": UpdateMode.MERGE, **condition})
        guard = existence_guard(self._partition, document_row, properties)
        first, *later = pack([merge], self._membership_units(resource_id, change), guard)
        etag = self._write_first(kind, resource_id, [first, *later],
                                 conditional=expected_etag is not None,
                                 feed=self._members_feed(meta, events,
                                                         quiet_is_nothing=True))
        written = self._submit_later(later, kind, resource_id, meta) or etag
        if not written:
            # nothing was sent, so nothing checked the row: check it now
            current = self._read(document_row, select=["id"])
            if current is None:
                raise self._not_stored(kind, resource_id)
            if expected_etag is not None and _etag(current) != expected_etag:
                raise VersionMoved()
        return written or None

    def _related_ids(self, kind: Kind, resource_id: str) -> list[str]:
        """A group's member ids, or the ids of a user's groups."""
        return (self._member_ids(resource_id) if kind == GROUP
                else self._group_ids(resource_id))

    def _relations(self, kind: Kind, resource_id: str, related: Sequence[str],
                   stamp: Stamp | None) -> list[Unit]:
        """Removals of every membership of a group or a user (``related``: the ids on the
        other side); with ``stamp``, a user's groups get a new meta each."""
        if kind == GROUP:
            return [remove_unit(self._partition, resource_id, user_id) for user_id in related]
        return [remove_unit(self._partition, group_id, resource_id,
                            stamp() if stamp is not None else None) for group_id in related]

    def _read_with_relations(self, kind: Kind, resource_id: str
                             ) -> tuple[TableEntity | None, list[str]]:
        """A delete's reads: the document row, and its memberships listed on the read pool
        meanwhile (one round trip). That listing may have been served before the document
        was read, so a membership added in between (which moved the row's etag) could be
        missing from it while the delete's If-Match on the row still holds; so it is used
        only when the row's last write (its ``Timestamp``) is older than the earliest the
        listing can have been served (``_listed_since``). Else the memberships are listed
        again, after the read, as a delete did before it read both at once."""
        started = time.monotonic()
        listing = self._store.alongside(lambda: self._related_ids(kind, resource_id))
        dates: list[str] = []

        def dated(response: Any, deserialized: Any, _headers: Any) -> Any:
            # the SDK's ``cls`` hook; a per-call raw_response_hook would replace the client's
            dates.append(str(response.http_response.headers.get("Date") or ""))
            return deserialized

        current = self._read(keys.document_key(kind, resource_id), cls=dated)
        elapsed = time.monotonic() - started
        related = listing.result()
        if current is not None and not _written_before(current, dates, elapsed):
            related = self._related_ids(kind, resource_id)
        return current, related

    # -- Store protocol --------------------------------------------------------------------

    def create(self, record: Record, indexes: Sequence[IndexKey],
               members: Sequence[Member] = (), *,
               events: Sequence[EventDraft] = ()) -> Record:
        """Store a new resource with its index rows (and members, for a group)."""
        partition = self._partition
        indexed = index_steps(partition, record.kind, record.id, indexes)
        entity = self._stamped(document_entity(
            partition, keys.document_key(record.kind, record.id), kind=record.kind,
            resource_id=record.id, document=record.document, meta=record.meta,
            index_rows=list(indexed)))
        if record.kind in COPIES:
            copy_into(indexed.values(), entity)
        head = [Step("create", entity), *indexed.values()]
        members = members if record.kind == GROUP else ()
        guard = existence_guard(partition, entity["RowKey"], meta_properties(record.meta))
        first, *later = batches = pack(head, add_units(partition, record.id, members), guard)
        with self._store.session():
            self._check_users(batches)
            try:
                results = submit(self._table, first,
                                 feed=self._members_feed(record.meta, events))
            except StepFailed as error:
                if failure_of(error) is Failure.TAKEN:
                    raise self._duplicate(first, error.index, record.id) from None
                self._unknown_members(error, batches)
                raise
            self._submit_later(later, record.kind, record.id, record.meta)
        return Record(record.kind, record.id, stored_document(entity), record.meta,
                      str(results[0]["etag"]))

    def get(self, kind: Kind, resource_id: str) -> Record | None:
        """The stored resource, or None."""
        with self._store.session():
            entity = self._read(keys.document_key(kind, resource_id))
        if entity is None:
            self._confirm()
            return None
        return self._record(kind, entity)

    def get_related(self, kind: Kind, resource_id: str, *, members: bool = False,
                    groups: bool = False) -> Related | None:
        """The stored resource and the relations asked for: their range query runs on the
        read pool while the document is read, so the two cost one round trip."""
        with self._store.session():
            pending = self._store.alongside(lambda: self._member_list(resource_id)) if (
                members and kind == GROUP) else None
            groups_of = self._store.alongside(lambda: self._group_ids(resource_id)) if (
                groups and kind == USER) else None
            entity = self._read(keys.document_key(kind, resource_id))
            found = pending.result() if pending is not None else None
            group_ids = sorted(groups_of.result()) if groups_of is not None else None
            if entity is None:
                self._confirm()
                return None
        return Related(self._record(kind, entity), found, group_ids)

    def change_members(self, group_id: str, *, last_modified: str, version: str,
                       members: MemberChange, expected_etag: str | None = None,
                       events: Sequence[EventDraft] = ()) -> str | None:
        """Member edits with a new last_modified and version; returns the new etag."""
        with self._store.session():
            # created is not written by a meta merge; the feed needs only the new two
            meta = Meta("", last_modified, version)
            return self._write_meta(GROUP, group_id, meta, expected_etag, members, events)

    def update(self, kind: Kind, resource_id: str, *, meta: Meta,
               expected_etag: str | None, document: Mapping[str, Any] | None = None,
               indexes: Sequence[IndexKey] | None = None,
               members: MemberChange | None = None,
               events: Sequence[EventDraft] = (), read: Record | None = None) -> Record:
        """Write new metadata and optionally a document, indexes and member edits. A
        ``read`` whose etag is ``expected_etag`` (and that knows its index rows) is written
        on as it is, without reading the document row again."""
        partition = self._partition
        document_row = keys.document_key(kind, resource_id)
        change = members if members and kind == GROUP else None
        with self._store.session():
            if document is None:
                self._write_meta(kind, resource_id, meta, expected_etag, change, events)
                current = self._read(document_row)
                if current is None:
                    raise self._not_stored(kind, resource_id)
                return self._record(kind, current)
            guard = existence_guard(partition, document_row, meta_properties(meta))
            known = (read.index_rows if read is not None and expected_etag is not None
                     and read.etag == expected_etag else None)
            for _ in STORE_RACE.tries():
                if known is not None:
                    etag, old_rows = cast(str, expected_etag), list(known)
                else:
                    current = self._read(document_row)
                    if current is None:
                        raise self._not_stored(kind, resource_id)
                    # The index swap is computed from this read, so the write is conditional
                    # on it even when the caller gave no etag; a lost race reads again.
                    etag = expected_etag if expected_etag is not None else _etag(current)
                    old_rows = stored_index_rows(current)
                head, stored = document_steps(partition, kind, resource_id, old_rows, etag,
                                              meta=meta, document=document, indexes=indexes,
                                              epoch=self._epoch, copies=kind in COPIES)
                first, *later = pack(head, self._membership_units(resource_id, change), guard)
                written = self._write_first(kind, resource_id, [first, *later],
                                            conditional=expected_etag is not None,
                                            feed=self._members_feed(meta, events))
                if written is not None:
                    self._submit_later(later, kind, resource_id, meta)
                    return Record(kind, resource_id, stored, meta, written)
        raise StorageUnavailable(_BUSY, retry_after=1)

    def delete(self, kind: Kind, resource_id: str, *,
               expected_version: str | None = None,
               events: Callable[[Record], Sequence[EventDraft]] | None = None,
               stamp: Stamp | None = None) -> None:
        """Remove a resource, its index rows and its membership rows in both directions;
        the final batch's If-Match on the row read makes ``expected_version`` hold. Pairs
        that do not fit the final batch go first, each batch with its membership events."""
        partition = self._partition
        document_row = keys.document_key(kind, resource_id)
        with self._store.session():
            # Member edits move a group's etag without touching its index rows, so a busy
            # group can need several rounds before its delete lands.
            for _ in DELETE_RACE.tries():
                current, related = self._read_with_relations(kind, resource_id)
                if current is None:
                    raise self._not_stored(kind, resource_id)
                if expected_version is not None and current.get("version") != expected_version:
                    raise VersionMoved()
                record = self._record(kind, current)
                own = list(events(record)) if events is not None else []
                when = Meta("", own[0].time if own else record.meta.last_modified,
                            record.meta.version)
                final = [Step("delete", row(partition, document_row), if_match(_etag(current)))]
                final += [Step("delete", row(partition, index_row), optional=True)
                          for index_row in stored_index_rows(current)]
                units = self._relations(kind, resource_id, related, stamp)
                per_unit = 1 if kind == USER else 0
                cost = len(units[0]) + per_unit if units else 1
                fit = max(0, MAX_BATCH - FEED_RESERVE - len(final)) // cost
                lead = len(units) - min(len(units), fit)
                for batch in pack([], units[:lead], per_unit=per_unit):
                    if batch:
                        submit(self._table, batch, feed=self._members_feed(when))
                implied = resource_id if kind == GROUP else None
                try:
                    submit(self._table, [*final, *(s for u in units[lead:] for s in u)],
                           feed=self._members_feed(when, own, implied=implied))
                except StepFailed as error:
                    failure = failure_of(error)
                    if failure is Failure.MISSING and error.index == 0:
                        raise self._not_stored(kind, resource_id) from None
                    if failure is Failure.MOVED:
                        continue
                    raise
                return
        raise StorageUnavailable(_BUSY, retry_after=1)

    def lookup(self, kind: Kind, key: IndexKey) -> list[Record]:
        """The resources whose index holds the key's value."""
        with self._store.session():
            if key.unique:
                # the whole row: it may carry a copy of the document (COPIES)
                found = self._read(keys.unique_index_key(kind, key.name, key.value),
                                   select=None if kind in COPIES else ["id", "value"])
                if found is not None and found.get("value") == key.value and has_copy(found):
                    return [self._copied(kind, found)]
                matches = [found] if found is not None else []
            else:
                low, high = keys.index_range(kind, key.name, key.value)
                matches = list(self._range(low, high, select=["id", "value"]))
            # a hashed key component could collide; the stored value cannot
            ids = sorted({entity["id"] for entity in matches if entity.get("value") == key.value})
            records = self._documents(kind, ids)
            if not records:
                self._confirm()
            return records

    def scan(self, kind: Kind) -> Iterator[Record]:
        """Every resource of a kind, ordered by id, streamed a storage page at a time."""
        low, high = keys.documents_range(kind)
        found = False
        with self._store.session():
            for entity in self._range(low, high, per_page=SCAN_PAGE):
                yield self._record(kind, entity)
                found = True
            if not found:
                self._confirm()

    def count(self, kind: Kind) -> int:
        """How many resources of a kind there are: the feed row's counts (one point read)."""
        with self._store.session():
            return self._tally().of(kind)

    def _tally(self) -> Counts:
        """The tenant's counts as its feed row holds them now. A row that predates counts
        gets them once: its keys are counted (never its documents) and the result merged
        into the row under If-Match on the row as read before, so that a write meanwhile,
        which moves the row, makes it count again. Without a feed row (no write yet since
        the feed) the keys are counted and nothing is written."""
        feeds = self._store.feeds
        for _ in STORE_RACE.tries():
            head = feeds.read(self._partition)
            if self._epoch is not None:  # the read that counts also says the tenant is live
                check_live(head.tenant_state, head.epoch if head.etag else self._epoch,
                           self._epoch)
            if head.counts is not None:
                return head.counts
            users, groups = (self._count_keys(kind) for kind in (USER, GROUP))
            counts = Counts(users, groups, 0, uuid.uuid4().hex)
            if head.etag is None:
                return Counts(users, groups, -1, "")
            counted = feeds.count_into(self._partition, head, counts)
            if counted is not None:
                return counts
        return Counts(users, groups, -1, "")  # too busy to record: this count stands alone

    def _count_keys(self, kind: Kind) -> int:
        low, high = keys.documents_range(kind)
        return sum(1 for _ in self._range(low, high, select=["RowKey"]))

    def window(self, kind: Kind, *, offset: int, size: int) -> Window:
        """Up to ``size`` resources of a kind from position ``offset``, and the count: one
        read of the feed row and one range from the key where a page of this process
        ended (``Marks``); from anywhere else, the keys before ``offset`` are read first
        (``RowKey`` only, streamed) from the nearest known position."""
        low, high = keys.documents_range(kind)
        with self._store.session():
            tally = self._tally()
            total = tally.of(kind)
            if size <= 0 or offset < 0:
                return Window([], total)
            marks = self._store.marks
            listing = (self._partition, tally.since, kind)
            base, after = (marks.start(listing, offset, tally.version) if tally.since
                           else (0, None))
            if base == 0 and after is None and offset >= total:
                return Window([], total)
            if base < offset:
                after = self._skip(kind, listing, base, after, offset, tally.version)
                if after is None:
                    return Window([], total)
            rows = list(islice(self._range(low, high, after=after,
                                           per_page=min(size, PAGE_LIMIT)), size))
            if rows and tally.since:
                marks.put(listing, offset + len(rows), str(rows[-1]["RowKey"]),
                          tally.version, served=True)
        return Window([self._record(kind, entity) for entity in rows], total)

    def _skip(self, kind: Kind, listing: tuple[str, str, Kind], base: int,
              after: str | None, offset: int, version: int) -> str | None:
        """The RowKey just before position ``offset``, reading only keys from ``after``
        (at position ``base``); every ``PAGE_LIMIT`` keys read leave a mark. None when the
        kind has fewer resources."""
        low, high = keys.documents_range(kind)
        wanted = offset - base
        last, read = after, 0
        rows = self._range(low, high, after=after, select=["RowKey"],
                           per_page=min(wanted, PAGE_LIMIT))
        for entity in islice(rows, wanted):
            last, read = str(entity["RowKey"]), read + 1
            if read % PAGE_LIMIT == 0 and read < wanted and listing[1]:
                self._store.marks.put(listing, base + read, last, version, served=False)
        return last if read == wanted else None

    def page(self, kind: Kind, *, cursor: str | None,
             size: int) -> tuple[list[Record], str | None]:
        """A page of resources in id order from ``cursor``, and the next cursor."""
        # The cursor holds the last RowKey served (Table's NextRowKey marker, one row
        # earlier): reading size + 1 rows tells exactly whether another page exists.
        low, high = keys.documents_range(kind)
        after = None
        if cursor:
            after = decode_cursor(cursor, self._epoch or 0)
            if not (after.startswith(low) and after < high):
                raise BadCursor("The cursor is not valid.")
        if size <= 0:
            return [], None
        with self._store.session():
            rows = list(islice(self._range(low, high, after=after,
                                           per_page=min(size + 1, PAGE_LIMIT)), size + 1))
            records = [self._record(kind, entity) for entity in rows[:size]]
            if not records:
                self._confirm()
        more = len(rows) > size
        return records, (encode_cursor(rows[size - 1]["RowKey"], self._epoch or 0)
                         if more else None)

    def members(self, group_id: str) -> Iterator[Member]:
        """A group's members, ordered by user id."""
        low, high = keys.members_range(group_id)
        with self._store.session():
            for entity in self._range(low, high, select=["userId", "display"]):
                yield Member(entity["userId"], entity.get("display"))

    def is_member(self, group_id: str, user_id: str) -> bool:
        """Whether the user is a direct member of the group."""
        with self._store.session():
            found = self._read(keys.member_key(group_id, user_id), select=["userId"])
        return found is not None

    def groups_of(self, user_id: str) -> list[str]:
        """The ids of the groups a user is a direct member of."""
        with self._store.session():
            return sorted(self._group_ids(user_id))

    def append(self, events: Sequence[EventDraft], *,
               tenant_state: str | None = None) -> int | None:
        """Events alone, in one transaction of the feed row and their rows."""
        feeds = self._store.feeds
        write = FeedWrite(feeds, self._partition, self._name, lambda _: list(events),
                          tenant_state=tenant_state, epoch=self._epoch)
        with self._store.session():
            if tenant_state is not None:  # decided on the row as stored, not as cached
                feeds.read(self._partition, replace=True)
            submit(self._table, [], feed=write)
        return write.landed

    def events(self, *, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events after ``after``: the run of consecutive positions that
        starts at ``after + 1`` (a gap there is retention's, or a batch still landing on a
        storage emulator that shows batches part by part)."""
        if after < 0:
            raise BadCursor("The cursor is not valid.")
        if limit <= 0:
            return []
        found: list[Event] = []
        with self._store.session():
            rows = self._store.range(self._partition, "", EVENTS_END, after=event_key(after),
                                     per_page=min(limit, PAGE_LIMIT))
            for entity in islice(rows, limit):
                event = event_from_entity(entity)
                if event.position != after + 1 + len(found):
                    break
                found.append(event)
            if not found:
                head = self._store.feeds.read(self._partition)
                if head.floor > after:
                    raise CursorExpired("Events after the cursor were removed (by retention, "
                                        "or with the tenant).")
        return found

    def position(self) -> int:
        """The feed's last position, read now."""
        with self._store.session():
            return self._store.feeds.read(self._partition).position

    def trim(self, *, before: str, limit: int) -> int:
        """Delete up to ``limit`` of the oldest events older than ``before``, raising the
        feed row's ``floor`` (under If-Match, never lowering it: trims may overlap) in the
        same transactions; returns how many this call deleted."""
        removed = 0
        with self._store.session():
            rows = self._store.range(self._partition, event_key(0), EVENTS_END,
                                     select=["RowKey", "position", "time"],
                                     per_page=min(max(1, limit), PAGE_LIMIT))
            old = []
            for entity in islice(rows, max(0, limit)):
                if str(entity["time"]) >= before:
                    break
                old.append((str(entity["RowKey"]), int(entity["position"])))
            step = MAX_BATCH - 1
            for start in range(0, len(old), step):
                chunk = old[start:start + step]
                removed += self._trim_batch([key for key, _ in chunk], chunk[-1][1])
            if old:
                self._store.feeds.forget(self._partition)
        return removed

    def _trim_batch(self, row_keys: Sequence[str], last: int) -> int:
        """Delete the event rows ``row_keys`` and raise the floor to ``last`` if it is lower,
        in one transaction; returns how many rows it deleted (others may be gone already)."""
        deletes = [Step("delete", row(self._partition, key), optional=True) for key in row_keys]
        for _ in DELETE_RACE.tries():
            feed = self._read(FEED_ROW, select=["floor"])
            if feed is None:
                raise_floor = [Step("upsert", row(self._partition, FEED_ROW, floor=last),
                                    {"mode": UpdateMode.MERGE})]
            elif int(feed.get("floor") or 0) < last:
                raise_floor = [Step("update", row(self._partition, FEED_ROW, floor=last),
                                    {"mode": UpdateMode.MERGE, **if_match(_etag(feed))})]
            else:
                raise_floor = []
            try:
                return len(submit(self._table, [*raise_floor, *deletes])) - len(raise_floor)
            except StepFailed as error:
                if raise_floor and error.index == 0 and failure_of(error) in (
                        Failure.MOVED, Failure.MISSING):
                    continue  # a write moved the feed row (or it went): read it again
                raise
        raise StorageUnavailable(_BUSY, retry_after=1)

    def purge(self, *, limit: int) -> int:
        """Delete up to ``limit`` of the partition's rows, 100 to a transaction; the feed row
        stays (``mark_deleting`` first, ``mark_deleted`` after)."""
        with self._store.session():
            rows = self._table.query_entities(
                "PartitionKey eq @partition and RowKey ne @feed",
                parameters={"partition": self._partition, "feed": FEED_ROW},
                select=["RowKey"], results_per_page=min(max(1, limit), PAGE_LIMIT))
            found = [str(entity["RowKey"]) for entity in islice(rows, max(0, limit))]
            for batch in chunked([(Step("delete", row(self._partition, key), optional=True),)
                                  for key in found]):
                submit(self._table, batch)
            self._store.feeds.forget(self._partition)
        return len(found)

    def mark_deleting(self) -> None:
        """Fence the tenant: from this call's return on, no write of any process lands in
        the partition (each meets the feed row, now marked, under If-Match)."""
        with self._store.session():
            self._store.feeds.mark(self._partition, DELETING)

    def mark_deleted(self) -> None:
        """After the purge: the feed row stays as the tenant's tombstone."""
        with self._store.session():
            self._store.feeds.mark(self._partition, DELETED)

    def start_epoch(self, state: str) -> int:
        """Begin a new tenant in this partition; ``NotEmpty`` when it still holds rows other
        than a feed row. Returns the new tenant's epoch."""
        with self._store.session():
            rows = self._table.query_entities(
                "PartitionKey eq @partition and RowKey ne @feed",
                parameters={"partition": self._partition, "feed": FEED_ROW},
                select=["RowKey"], results_per_page=1)
            if next(iter(rows), None) is not None:
                raise NotEmpty(f"The partition of tenant {self._name} still holds rows.")
            return self._store.feeds.start_epoch(self._partition, state)


def table_store(settings: Settings, *, credential: TokenCredential | None = None,
                on_commit: OnCommit | None = None, **client_kwargs: Any) -> TableStore:
    """The store for ``settings``; the process should build it once (it creates the table
    on first use). ``on_commit`` is told of each committed transaction's tenant and last
    position; ``client_kwargs`` override ``table_client.PRODUCTION_CLIENT_OPTIONS``."""
    return TableStore(table_client(settings, credential=credential, **client_kwargs),
                      on_commit=on_commit)

