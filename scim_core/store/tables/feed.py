"""The change feed in a tenant's partition: the ``feed`` row that hands out positions under
If-Match, and the event rows (docs/host-app.md, "Table layout")."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from scim_core.events import drafts
from scim_core.events.model import Event, EventDraft, EventType
from scim_core.lru import Lru
from scim_core.store.errors import StorageUnavailable
from scim_core.store.tables.batches import Step, if_match, row
from scim_core.store.tables.entities import MAX_ENTITY_BYTES, entity_size, split_chunks

FEED_ROW = "feed"
EVENT_PREFIX = "event:"
EVENTS_END = "event;"
MAX_ATTEMPTS = 60
TURN_STRIPES = 256
_LOG = logging.getLogger(__name__)
_BUSY = "The tenant's change feed is too busy; retry later."

OnCommit = Callable[[str, int], None]


def event_key(position: int) -> str:
    """The RowKey of the event at ``position``."""
    return f"{EVENT_PREFIX}{position:016d}"


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


@dataclass(frozen=True)
class Head:
    """A tenant's feed row as last seen: its last position and etag (None: no row yet)."""

    position: int
    etag: str | None
    floor: int = 0
    tenant_state: str | None = None


class Feeds:
    """The feed rows of every tenant of a table, as this process last saw them: a write
    takes its positions from the cached head without reading it, and reads it only after
    losing a race to another process. Within the process, a tenant's transactions take
    turns (``turn``), so they never race each other for the feed row."""

    def __init__(self, table: TableClient, *, on_commit: OnCommit | None = None,
                 size: int = 20_000) -> None:
        self._table = table
        self._heads: Lru[str, Head] = Lru(size)
        self._lock = threading.Lock()
        self._turns = tuple(threading.Lock() for _ in range(TURN_STRIPES))
        self.on_commit = on_commit

    def turn(self, partition: str) -> threading.Lock:
        """The lock a transaction of ``partition``'s feed holds from taking its positions
        until its answer has moved the cached head (striped: bounded, never evicted)."""
        return self._turns[zlib.crc32(partition.encode("utf-8", "surrogatepass"))
                           % TURN_STRIPES]

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
                        int(entity.get("floor") or 0), entity.get("tenantState"))
            if thorough and "position" not in entity:
                head = Head(self._last_event(partition), head.etag, head.floor,
                            head.tenant_state)
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

    def committed(self, partition: str, tenant: str, head: Head) -> None:
        """A transaction of this process moved the head to ``head``."""
        self._keep(partition, head)
        if self.on_commit is not None:
            try:
                self.on_commit(tenant, head.position)
            except Exception:  # a nudge is a hint: its failure never fails the write
                _LOG.warning("the commit hook failed", exc_info=True)

    def forget(self, partition: str) -> None:
        """Drop the cached head (the partition was purged)."""
        self._heads.pop(partition)


class FeedWrite:
    """The events of one change's transactions: ``prepare`` builds a batch's event rows,
    ``steps`` (under the turn) places them after the feed row's move, ``committed`` and
    ``moved`` report how the batch went."""

    def __init__(self, feeds: Feeds, partition: str, tenant: str,
                 events: Callable[[Sequence[Step]], list[EventDraft]], *,
                 tenant_state: str | None = None, quiet_is_nothing: bool = False) -> None:
        self.quiet_is_nothing = quiet_is_nothing
        """A batch without events changes nothing (member edits that add or remove no one)."""
        self._feeds = feeds
        self._partition = partition
        self._tenant = tenant
        self._events = events
        self._tenant_state = tenant_state
        self._attempts = 0
        self._head: Head | None = None
        self._rows: list[dict[str, Any]] = []
        self.landed: int | None = None
        """The last position of the latest batch that landed (None before one has)."""

    def prepare(self, batch: Sequence[Step]) -> bool:
        """Build the event rows of a batch of ``batch``'s steps; whether there are any."""
        self._rows = [unplaced_entity(self._partition, draft, self._tenant)
                      for draft in self._events(batch)]
        return bool(self._rows)

    def steps(self) -> list[Step]:
        """The feed row's move and the prepared event rows at the next positions (nothing
        when the batch emits no event, or when the feed already records this write's tenant
        state); called holding ``turn``."""
        head = self._head = self._feeds.head(self._partition)
        if not self._rows or (self._tenant_state is not None
                              and head.tenant_state == self._tenant_state):
            return []
        last = head.position + len(self._rows)
        partition = self._partition
        moved: dict[str, Any] = {"position": last}
        if self._tenant_state is not None:
            moved["tenantState"] = self._tenant_state
        if head.etag is None:
            feed = Step("create", row(partition, FEED_ROW, floor=head.floor, **moved))
        else:
            feed = Step("update", row(partition, FEED_ROW, **moved),
                        {"mode": UpdateMode.MERGE, **if_match(head.etag)})
        return [feed, *(Step("create", placed_entity(entity, self._tenant, head.position + n))
                        for n, entity in enumerate(self._rows, 1))]

    def committed(self, results: Sequence[Mapping[str, Any]]) -> None:
        """The batch landed; ``results`` are its feed steps' results."""
        if not self._rows or self._head is None:
            return
        head = self._head
        self.landed = head.position + len(self._rows)
        self._feeds.committed(self._partition, self._tenant, Head(
            self.landed, str(results[0]["etag"]), head.floor,
            self._tenant_state or head.tenant_state))

    def turn(self) -> threading.Lock:
        """Held around one batch: from ``steps`` to ``committed`` or ``moved``."""
        return self._feeds.turn(self._partition)

    def moved(self) -> None:
        """The batch failed on the feed row: another process took the positions. Read the
        head again, for this and the next transaction of the tenant."""
        self._attempts += 1
        if self._attempts >= MAX_ATTEMPTS:
            raise StorageUnavailable(_BUSY, retry_after=1)
        self._feeds.read(self._partition, thorough=self._attempts > 2, replace=True)

    def back_off(self) -> None:
        """After ``moved``, outside the turn: a short random pause once races keep being
        lost, so that processes racing for one tenant fall out of step."""
        if self._attempts > 3:
            time.sleep(random.uniform(0, 0.002 * self._attempts))

