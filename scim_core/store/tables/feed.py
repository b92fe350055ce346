"""The change feed in a tenant's partition: the ``feed`` row that hands out positions under
If-Match, and the event rows (docs/host-app.md, "Table layout")."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from scim_core.events import drafts
from scim_core.events.model import Event, EventDraft, EventType
from scim_core.kinds import Kind
from scim_core.lru import Lru
from scim_core.retry import FEED_RACE
from scim_core.store.errors import StorageUnavailable, TenantGone
from scim_core.store.lifecycle import DELETED, DELETING, check_live
from scim_core.store.tables import keys
from scim_core.store.tables.batches import Step, if_match, row
from scim_core.store.tables.entities import MAX_ENTITY_BYTES, entity_size, split_chunks
from scim_core.store.tables.group_commit import Alone, Lanes
from scim_reader.layout import EVENT_PREFIX as EVENT_PREFIX
from scim_reader.layout import EVENTS_END as EVENTS_END
from scim_reader.layout import FEED_ROW as FEED_ROW
from scim_reader.layout import event_key as event_key

_LOG = logging.getLogger(__name__)
_BUSY = "The tenant's change feed is too busy; retry later."

OnCommit = Callable[[str, int], None]


def event_entity(partition: str, event: Event) -> dict[str, Any]:
    """An event row."""
    return placed_entity(unplaced_entity(partition, event, event.tenant), event.tenant,
                         event.position)


def unplaced_entity(partition: str, draft: EventDraft, tenant: str) -> dict[str, Any]:
    """An event row without its place (RowKey, ``position``, ``id``): the costly part,
    built before a transaction takes its turn for the feed row."""
    entity = row(partition, event_key(10**16 - 1), position=2**62, id=f"{tenant}:{2**62}",
                 tenant=tenant, type=str(draft.type), time=draft.time,
                 resourceType=draft.resource_type, resourceId=draft.resource_id,
                 version=draft.version, attributes=json.dumps(list(draft.attributes)),
                 members=json.dumps(list(draft.members)))
    chunks = ([] if draft.resource is None else
              split_chunks(json.dumps(draft.resource, ensure_ascii=False,
                                      separators=(",", ":"))))
    entity["resourceChunks"] = len(chunks)
    entity.update({f"resource_{i}": chunk for i, chunk in enumerate(chunks)})
    # sized with the longest place it can take
    if entity_size(entity) > MAX_ENTITY_BYTES:
        # a resource near the document limit, with its meta: the event names it instead
        for i in range(len(chunks)):
            del entity[f"resource_{i}"]
        entity["resourceChunks"] = 0
    return entity


def placed_entity(entity: Mapping[str, Any], tenant: str, position: int) -> dict[str, Any]:
    """``entity`` (``unplaced_entity``) at ``position``."""
    return {**entity, "RowKey": event_key(position), "position": position,
            "id": f"{tenant}:{position}"}


def event_from_entity(entity: Mapping[str, Any]) -> Event:
    """The event an event row holds."""
    chunks = int(entity.get("resourceChunks") or 0)
    resource = (json.loads("".join(entity[f"resource_{i}"] for i in range(chunks)))
                if chunks else None)
    return Event(type=EventType(entity["type"]), time=str(entity["time"]),
                 resource_type=str(entity.get("resourceType") or ""),
                 resource_id=str(entity.get("resourceId") or ""),
                 version=str(entity.get("version") or ""), resource=resource,
                 attributes=tuple(json.loads(entity.get("attributes") or "[]")),
                 members=tuple(json.loads(entity.get("members") or "[]")),
                 tenant=str(entity["tenant"]), position=int(entity["position"]))


def membership_events(steps: Iterable[Step], *, time: str, version: str,
                      implied: str | None = None) -> list[EventDraft]:
    """The membership events of a transaction's steps: per group, the users whose pair it
    deletes and whose rows it writes. A group's removals are left out when the transaction
    deletes the group itself (``implied``); a step that touches a group's meta on the side
    (a deleted user's group) gives that group's events its own time and version."""
    removed: dict[str, set[str]] = {}
    added: dict[str, set[str]] = {}
    stamps: dict[str, tuple[str, str]] = {}
    for step in steps:
        if step.pair is None:
            continue
        group_id, user_id = step.pair
        if step.verb == "delete":
            removed.setdefault(group_id, set()).add(user_id)
        elif step.member is not None:
            added.setdefault(group_id, set()).add(user_id)
        else:
            stamps[group_id] = (step.entity["lastModified"], step.entity["version"])
    events: list[EventDraft] = []
    for group_id in sorted(set(removed) | set(added)):
        if group_id == implied:
            continue
        when, which = stamps.get(group_id, (time, version))
        events += drafts.membership(group_id, removed=removed.get(group_id, ()),
                                    added=added.get(group_id, ()), time=when, version=which)
    return events


# -- counts: how many users and groups the tenant holds, kept in its feed row -------------------


@dataclass(frozen=True)
class Counts:
    """How many users and groups a tenant holds, as its feed row records them: every
    transaction that creates or deletes a document moves them under the row's If-Match.
    ``version`` grows with each such transaction; ``since`` names the counting (a tenant
    re-created under the same name starts another)."""

    users: int
    groups: int
    version: int
    since: str

    def of(self, kind: str) -> int:
        """The count of ``kind``."""
        return self.users if kind == Kind.USER else self.groups

    def moved(self, delta: tuple[int, int]) -> Counts:
        """The counts after a transaction that changed them by ``delta`` (users, groups)."""
        return Counts(self.users + delta[0], self.groups + delta[1], self.version + 1,
                      self.since)


_USERS_LOW = keys.documents_range(Kind.USER)[0]
_GROUPS_LOW = keys.documents_range(Kind.GROUP)[0]


def count_delta(steps: Iterable[Step]) -> tuple[int, int]:
    """How a transaction of ``steps`` changes the users and groups: +1 per document row it
    creates, -1 per document row it deletes."""
    users = groups = 0
    for step in steps:
        change = {"create": 1, "delete": -1}.get(step.verb, 0)
        row_key = str(step.entity.get("RowKey", ""))
        if change and row_key.startswith(_USERS_LOW):
            users += change
        elif change and row_key.startswith(_GROUPS_LOW):
            groups += change
    return users, groups


def counts_of(entity: Mapping[str, Any]) -> Counts | None:
    """The counts a feed row holds (None: a row that predates them)."""
    if "rosterId" not in entity:
        return None
    return Counts(int(entity.get("users") or 0), int(entity.get("groups") or 0),
                  int(entity.get("rosterVersion") or 0), str(entity["rosterId"]))


def counts_properties(counts: Counts | None) -> dict[str, Any]:
    """The feed row properties that hold ``counts`` (none for None)."""
    if counts is None:
        return {}
    return {"users": counts.users, "groups": counts.groups, "rosterVersion": counts.version,
            "rosterId": counts.since}


@dataclass(frozen=True)
class Head:
    """A tenant's feed row as last seen: its last position and etag (None: no row yet)."""

    position: int
    etag: str | None
    floor: int = 0
    tenant_state: str | None = None
    epoch: int = 0
    counts: Counts | None = None


class Feeds:
    """The feed rows of every tenant of a table, as this process last saw them: a write
    takes its positions from the cached head without reading it, and reads it only after
    losing a race to another process. Within the process, a tenant's transactions go one
    at a time, several writes to a transaction (``lanes``, ``group_commit``), so they never
    race each other for the feed row."""

    def __init__(self, table: TableClient, *, on_commit: OnCommit | None = None,
                 size: int = 20_000) -> None:
        self._table = table
        self._heads: Lru[str, Head] = Lru(size)
        self._lock = threading.Lock()
        self.on_commit = on_commit
        self.lanes: Lanes[FeedWrite] = Lanes(self._group_turn)

    def _group_turn(self, partition: str, writes: Sequence[FeedWrite]) -> FeedGroup:
        """The feed's part in one transaction of ``writes``."""
        return FeedGroup(self, partition, writes)

    def head(self, partition: str) -> Head:
        """The cached head, read on first use."""
        return self._heads.get(partition) or self.read(partition)

    def read(self, partition: str, *, thorough: bool = False, replace: bool = False) -> Head:
        """The head as stored now. Without a feed row it is 0, or, when ``thorough``, the
        last event row's position (for a feed row lost while its events remain). It
        replaces the cached head when it is newer, or, with ``replace`` (after a
        transaction failed on the feed row), whatever it is: the row may have gone with its
        table."""
        try:
            entity = self._table.get_entity(partition, FEED_ROW)
        except ResourceNotFoundError:
            head = Head(self._last_event(partition) if thorough else 0, None)
        else:
            head = Head(int(entity.get("position") or 0), str(entity.metadata["etag"]),
                        int(entity.get("floor") or 0), entity.get("tenantState"),
                        int(entity.get("epoch") or 0), counts_of(entity))
            if thorough and "position" not in entity:
                head = Head(self._last_event(partition), head.etag, head.floor,
                            head.tenant_state, head.epoch, head.counts)
        self._keep(partition, head, always=replace)
        return head

    def _keep(self, partition: str, head: Head, *, always: bool = False) -> None:
        """Cache ``head`` unless a transaction of this process has already moved past it
        (a read that raced a commit)."""
        with self._lock:
            known = self._heads.get(partition)
            if always or known is None or known.position <= head.position:
                self._heads.put(partition, head)

    def _last_event(self, partition: str) -> int:
        rows = self._table.query_entities(
            "PartitionKey eq @p and RowKey ge @low and RowKey lt @high",
            parameters={"p": partition, "low": EVENT_PREFIX, "high": EVENTS_END},
            select=["position"])
        last = 0
        for entity in rows:
            last = max(last, int(entity["position"]))
        return last

    def committed(self, partition: str, tenant: str, head: Head, *,
                  appended: bool = True) -> None:
        """A transaction of this process moved the head to ``head`` (``appended``: with
        events, which the commit hook is told of)."""
        self._keep(partition, head)
        if appended and self.on_commit is not None:
            try:
                self.on_commit(tenant, head.position)
            except Exception:  # a nudge is a hint: its failure never fails the write
                _LOG.warning("the commit hook failed", exc_info=True)

    def forget(self, partition: str) -> None:
        """Drop the cached head (the partition was purged)."""
        self._heads.pop(partition)

    def mark(self, partition: str, state: str) -> Head:
        """Record ``state`` (deleting, then deleted) on the feed row under If-Match, creating
        the row when there is none; a writer whose cached head predates the mark fails its
        If-Match, reads the row again and sees it. Deleted also raises the floor to the last
        position, since no event survives a purge. Returns the row as marked."""
        for _ in FEED_RACE.tries():
            head = self.read(partition, thorough=True, replace=True)
            if head.tenant_state == state or (state == DELETING and head.tenant_state == DELETED):
                return head
            moved: dict[str, Any] = {"tenantState": state, "position": head.position,
                                     "epoch": head.epoch}
            if state == DELETED:
                moved["floor"] = head.position
            if self._write(partition, head, moved):
                return self.read(partition, replace=True)
        raise StorageUnavailable(_BUSY, retry_after=1)

    def start_epoch(self, partition: str, state: str) -> int:
        """Give the feed row (absent, a tombstone, or left by a create that failed) to a
        new tenant of the partition: the next epoch, in ``state``, numbering on after every
        position the id ever used with the floor above them, so that a feed cursor of an
        earlier tenant of the id is expired. Returns the epoch. The caller has made sure
        that the partition holds nothing else."""
        for _ in FEED_RACE.tries():
            head = self.read(partition, thorough=True, replace=True)
            if head.tenant_state == DELETING:
                raise StorageUnavailable("The tenant's delete is still under way.",
                                         retry_after=1)
            fresh = head.etag is None and head.position == 0
            start = 0 if fresh else head.position + 1
            epoch = head.epoch + 1
            # The partition is empty: the new tenant's counting starts at zero.
            fresh_counts = counts_properties(Counts(0, 0, 0, uuid.uuid4().hex))
            if self._write(partition, head, {"tenantState": state, "position": start,
                                             "floor": start, "epoch": epoch, **fresh_counts}):
                self.read(partition, replace=True)
                return epoch
        raise StorageUnavailable(_BUSY, retry_after=1)

    def _write(self, partition: str, head: Head, properties: Mapping[str, Any]) -> bool:
        """Write the feed row from ``head`` (create, or merge under If-Match); whether it
        landed (False: another writer moved it first)."""
        entity = row(partition, FEED_ROW, **properties)
        try:
            if head.etag is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(entity, mode=UpdateMode.MERGE, etag=head.etag,
                                          match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError):
            return False
        except ResourceNotFoundError as error:
            if "TableNotFound" in str(getattr(error, "error_code", "") or ""):
                raise
            return False
        return True

    def count_into(self, partition: str, head: Head, counts: Counts) -> Head | None:
        """Record ``counts`` (from a scan of the keys that began after ``head`` was read)
        in the feed row, under If-Match on ``head``; the head after, or None when a write
        moved the row meanwhile (the scan may have missed it) or the row is gone."""
        if head.etag is None:
            return None
        entity = row(partition, FEED_ROW, **counts_properties(counts))
        try:
            answer = self._table.update_entity(entity, mode=UpdateMode.MERGE,
                                               **if_match(head.etag))
        except (ResourceNotFoundError, ResourceModifiedError):
            return None
        counted = replace(head, etag=str(answer["etag"]), counts=counts)
        self._keep(partition, counted)
        return counted


class FeedWrite:
    """The events of one change's transactions: ``prepare`` builds a batch's event rows,
    ``send`` commits the batch in the partition's next transaction (``group_commit``); for
    a transaction of this write alone, ``steps`` places the rows after the feed row's move,
    ``committed`` and ``moved`` report how it went (``FeedGroup`` for several writes)."""

    def __init__(self, feeds: Feeds, partition: str, tenant: str,
                 events: Callable[[Sequence[Step]], list[EventDraft]], *,
                 tenant_state: str | None = None, quiet_is_nothing: bool = False,
                 epoch: int | None = None) -> None:
        self.quiet_is_nothing = quiet_is_nothing
        """A batch without events changes nothing (member edits that add or remove no one)."""
        self._feeds = feeds
        self._partition = partition
        self._tenant = tenant
        self._events = events
        self._tenant_state = tenant_state
        self._epoch = epoch
        """The epoch of the tenant the write is for (None: whichever tenant holds the id)."""
        self._writes = False
        self._attempts = 0
        self._began = time.monotonic()
        self._head: Head | None = None
        self._rows: list[dict[str, Any]] = []
        self._delta = (0, 0)
        self.landed: int | None = None
        """The last position of the latest batch that landed (None before one has)."""

    def prepare(self, batch: Sequence[Step]) -> bool:
        """Build the event rows of a batch of ``batch``'s steps; whether there are any."""
        self._rows = [unplaced_entity(self._partition, draft, self._tenant)
                      for draft in self._events(batch)]
        self._writes = bool(batch)
        self._delta = count_delta(batch)
        return bool(self._rows)

    def steps(self) -> list[Step]:
        """The feed row's move and the prepared event rows at the next positions (nothing
        when the feed already records this write's tenant state); called by the lane's leader.
        A batch that emits no event still meets the feed row (merged with nothing, under
        If-Match), so that no write lands past a delete's mark. Raises ``TenantGone`` when
        the feed is marked deleting or deleted, or belongs to another epoch."""
        head = self._head = self._live(self._feeds.head(self._partition))
        if (not self._rows and not self._writes) or (
                self._tenant_state is not None and head.tenant_state == self._tenant_state):
            return []
        last = head.position + len(self._rows)
        partition = self._partition
        moved: dict[str, Any] = {"position": last, **self._counted(head)}
        if self._tenant_state is not None:
            moved["tenantState"] = self._tenant_state
        if head.etag is None:
            if self._epoch:
                moved["epoch"] = self._epoch
            feed = Step("create", row(partition, FEED_ROW, floor=head.floor, **moved))
        else:
            feed = Step("update", row(partition, FEED_ROW, **moved),
                        {"mode": UpdateMode.MERGE, **if_match(head.etag)})
        return [feed, *(Step("create", placed_entity(entity, self._tenant, head.position + n))
                        for n, entity in enumerate(self._rows, 1))]

    def _live(self, head: Head) -> Head:
        """``head`` when it is the live feed of this write's tenant; a cached head that
        says otherwise is read again before the write is refused (it may be behind)."""
        try:
            check_live(head.tenant_state, head.epoch, self._epoch)
        except TenantGone:
            head = self._feeds.read(self._partition, replace=True)
            check_live(head.tenant_state, head.epoch, self._epoch)
        return head

    def _counted(self, head: Head) -> dict[str, Any]:
        """The feed row's counts after this batch (none while the row has none)."""
        if head.counts is None or self._delta == (0, 0):
            return {}
        return counts_properties(head.counts.moved(self._delta))

    def committed(self, results: Sequence[Mapping[str, Any]]) -> None:
        """The batch landed; ``results`` are its feed steps' results."""
        if not results or self._head is None:
            return
        head = self._head
        counts = head.counts
        if counts is not None and self._delta != (0, 0):
            counts = counts.moved(self._delta)
        if self._rows:
            self.landed = head.position + len(self._rows)
        self._feeds.committed(self._partition, self._tenant, Head(
            head.position + len(self._rows), str(results[0]["etag"]), head.floor,
            self._tenant_state or head.tenant_state, head.epoch or (self._epoch or 0),
            counts), appended=bool(self._rows))

    def moved(self) -> None:
        """The batch failed on the feed row: another process took the positions. After
        ``back_off``, read the head again, for this and the next transaction of the tenant
        (the read comes last, so that the transaction goes out on a head just read)."""
        self.lost()
        self.back_off()
        self._feeds.read(self._partition, thorough=self._attempts > 2, replace=True)

    def lost(self) -> None:
        """Count a race lost on the feed row; ``StorageUnavailable`` once this write has
        waited ``FEED_RACE.seconds`` for its positions."""
        self._attempts += 1
        if FEED_RACE.spent(self._attempts, time.monotonic() - self._began):
            raise StorageUnavailable(_BUSY, retry_after=1)

    @property
    def alone(self) -> bool:
        """A write of a tenant state goes in a transaction of its own."""
        return self._tenant_state is not None

    @property
    def event_count(self) -> int:
        """How many event rows the prepared batch appends."""
        return len(self._rows)

    @property
    def event_bytes(self) -> int:
        """The size of those rows."""
        return sum(entity_size(entity) for entity in self._rows)

    def send(self, table: TableClient, batch: Sequence[Step]) -> list[Mapping[str, Any]]:
        """``batch`` with this write's events, committed in the partition's next
        transaction (``group_commit.Lanes.send``)."""
        return self._feeds.lanes.send(table, self._partition, batch, self)

    def back_off(self) -> None:
        """In ``moved``, before the head is read again: a short random pause once races
        keep being lost, so that processes racing for one tenant fall out of step."""
        longest = FEED_RACE.pause(self._attempts)
        if longest > 0:
            time.sleep(random.uniform(0, longest))



class FeedGroup:
    """The feed's part in one transaction of several writes of a partition: one move of
    the feed row, then each write's events at the next positions in the writes' order.
    One write: that write's own part (``FeedWrite.steps`` and the rest)."""

    def __init__(self, feeds: Feeds, partition: str, writes: Sequence[FeedWrite]) -> None:
        self._feeds = feeds
        self._partition = partition
        self._writes = list(writes)

    def steps(self) -> list[Step]:
        """The feed row's move and every write's event rows. Raises ``group_commit.Alone``
        when the writes cannot share the feed row's move: a tenant state, no feed row yet,
        or a write whose tenant is gone (each then learns its own fate alone)."""
        if len(self._writes) == 1:
            return self._writes[0].steps()
        first = self._writes[0]
        try:
            head = first._live(self._feeds.head(self._partition))
            for write in self._writes[1:]:
                check_live(head.tenant_state, head.epoch, write._epoch)
        except TenantGone:
            raise Alone() from None
        if head.etag is None or any(write.alone for write in self._writes):
            raise Alone()
        position, counts = head.position, head.counts
        events: list[Step] = []
        for write in self._writes:
            write._head = replace(head, position=position, counts=counts)
            events += [Step("create", placed_entity(entity, write._tenant, position + n))
                       for n, entity in enumerate(write._rows, 1)]
            position += len(write._rows)
            if counts is not None and write._delta != (0, 0):
                counts = counts.moved(write._delta)
        moved: dict[str, Any] = {"position": position}
        if counts is not head.counts:
            moved.update(counts_properties(counts))
        assert head.etag is not None
        feed = Step("update", row(self._partition, FEED_ROW, **moved),
                    {"mode": UpdateMode.MERGE, **if_match(head.etag)})
        return [feed, *events]

    def committed(self, results: Sequence[Mapping[str, Any]]) -> None:
        """The transaction landed; ``results`` are its feed steps' results. Each write
        records its part in queue order (``FeedWrite.committed`` from the head just
        before its events), so the cached head ends at the transaction's."""
        for write in self._writes:
            write.committed(results)

    def moved(self) -> dict[int, BaseException]:
        """Another process took the positions: each write counts the race lost (those
        that have waited too long give up), and the first (``FeedWrite.moved``: after its
        pause) reads the head once again for all."""
        gave_up: dict[int, BaseException] = {}
        for at, write in enumerate(self._writes[1:], 1):
            try:
                write.lost()
            except StorageUnavailable as error:
                gave_up[at] = error
        try:
            self._writes[0].moved()
        except StorageUnavailable as error:
            gave_up[0] = error
            if len(self._writes) > len(gave_up):
                self._feeds.read(self._partition, replace=True)
        return gave_up
