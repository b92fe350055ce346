"""Group commit: a tenant's transactions that queue while one is in flight go together in the
next (docs/architecture.md, "Table Storage store", "Group commit")."""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient, TableTransactionError

from scim_core.store.tables.batches import MAX_BATCH, Step
from scim_core.store.tables.entities import entity_size
from scim_core.store.tables.errors import StepFailed

MAX_PAYLOAD = 3 * 1024 * 1024
"""Bytes of entities a combined transaction carries at most, well inside storage's 4 MiB
request limit (the multipart framing and JSON escaping add to the entities' own size). A
write bigger than this alone still goes, alone, as it would without group commit."""
OPERATION_OVERHEAD = 600
"""Bytes of multipart framing and headers counted for each operation."""
_OWN_FAILURES = frozenset({404, 409, 412})
"""Statuses that storage reports against one operation; any other failure of a combined
transaction may belong to any of its writes."""


class Alone(Exception):
    """The feed cannot place these writes together (a tenant state, a feed row not yet
    created, a write whose tenant is gone): each is to be sent on its own."""


class Write(Protocol):
    """A write's part in the feed, as a group commit needs it."""

    @property
    def alone(self) -> bool:
        """Whether the write always goes in a transaction of its own."""
        ...

    @property
    def event_count(self) -> int:
        """How many event rows the prepared batch appends."""
        ...

    @property
    def event_bytes(self) -> int:
        """The size of those rows."""
        ...


W = TypeVar("W", bound=Write)


class FeedTurn(Protocol):
    """The feed's part in one transaction of one or more writes."""

    def steps(self) -> list[Step]:
        """The feed row's move then every write's event rows, in the writes' order."""
        ...

    def committed(self, results: Sequence[Mapping[str, Any]]) -> None:
        """The transaction landed; ``results`` are its feed steps' results."""
        ...

    def moved(self) -> dict[int, BaseException]:
        """The transaction lost the feed row to another process: after a pause once races
        keep being lost, the head is read again. Returns, by index, the writes that gave
        up (waited too long)."""
        ...


@dataclass(eq=False)
class _Ticket(Generic[W]):
    steps: list[Step]
    write: W
    alone: bool
    rows: frozenset[str]
    size: int
    done: bool = False
    results: list[Mapping[str, Any]] | None = None
    error: BaseException | None = None

    def finish(self, results: list[Mapping[str, Any]] | None = None,
               error: BaseException | None = None) -> None:
        self.done, self.results, self.error = True, results, error


@dataclass(eq=False)
class _Lane(Generic[W]):
    cond: threading.Condition = field(default_factory=threading.Condition)
    queue: deque[_Ticket[W]] = field(default_factory=deque)
    leading: bool = False
    users: int = 0


class Lanes(Generic[W]):
    """One queue of transactions per partition of one table, in this process. A writer
    queues its transaction; when no transaction of the partition is in flight it leads:
    it takes the queued transactions that fit together (FIFO, at most ``MAX_BATCH``
    operations and ``MAX_PAYLOAD`` bytes, no row twice), sends them as one and gives each
    writer its own outcome. ``turn`` gives the feed's part for the writes taken."""

    def __init__(self, turn: Callable[[str, Sequence[W]], FeedTurn]) -> None:
        self._turn = turn
        self._lock = threading.Lock()
        self._lanes: dict[str, _Lane[W]] = {}

    def send(self, table: TableClient, partition: str, batch: Sequence[Step],
             write: W) -> list[Mapping[str, Any]]:
        """``batch`` (with ``write``'s events) committed, possibly with other writes of the
        partition; its operations' results. Raises ``StepFailed`` (its index in ``batch``)
        for a failure of one of its own operations, and whatever else ended the
        transaction (``StorageUnavailable`` when the feed stayed busy too long)."""
        ticket = _Ticket(list(batch), write, write.alone,
                         frozenset(str(step.entity["RowKey"]) for step in batch),
                         _payload(batch, write))
        lane = self._enter(partition)
        try:
            with lane.cond:
                lane.queue.append(ticket)
            while True:
                with lane.cond:
                    while not ticket.done and lane.leading:
                        lane.cond.wait()
                    if ticket.done:
                        break
                    lane.leading = True
                    group = _take(lane.queue)
                try:
                    self._lead(table, partition, group)
                finally:
                    with lane.cond:
                        lane.queue.extendleft(reversed([t for t in group if not t.done]))
                        lane.leading = False
                        lane.cond.notify_all()
        finally:
            self._leave(partition, lane)
        if ticket.error is not None:
            raise ticket.error
        assert ticket.results is not None
        return ticket.results

    def queued(self, partition: str) -> int:
        """How many transactions of ``partition`` wait for the next one (for tests and
        diagnostics)."""
        with self._lock:
            lane = self._lanes.get(partition)
        if lane is None:
            return 0
        with lane.cond:
            return len(lane.queue)

    def _enter(self, partition: str) -> _Lane[W]:
        with self._lock:
            lane = self._lanes.get(partition)
            if lane is None:
                lane = self._lanes[partition] = _Lane()
            lane.users += 1
            return lane

    def _leave(self, partition: str, lane: _Lane[W]) -> None:
        with self._lock:
            lane.users -= 1
            if lane.users == 0:
                del self._lanes[partition]

    def _lead(self, table: TableClient, partition: str, group: list[_Ticket[W]]) -> None:
        """Send ``group`` as one transaction and finish the tickets it decides; the rest
        stay queued (at the front, in order) for the next transaction."""
        try:
            turn = self._turn(partition, [ticket.write for ticket in group])
            tail = turn.steps()
        except Alone:
            for ticket in group:
                ticket.alone = True
            return
        except Exception as error:
            _fail_all(group, error)
            return
        steps = [step for ticket in group for step in ticket.steps]
        if not steps and not tail:
            group[0].finish([])  # events alone, and the feed already records them
            return
        try:
            results = table.submit_transaction([step.operation() for step in [*steps, *tail]])
        except TableTransactionError as error:
            self._failed(group, turn, error, len(steps), len(tail))
            return
        except HttpResponseError as error:
            if len(group) > 1 and error.status_code in (400, 413):
                for ticket in group:
                    ticket.alone = True
                return
            _fail_all(group, error)
            return
        except Exception as error:
            _fail_all(group, error)
            return
        turn.committed(results[len(steps):])
        at = 0
        for ticket in group:
            ticket.finish(list(results[at:at + len(ticket.steps)]))
            at += len(ticket.steps)

    def _failed(self, group: list[_Ticket[W]], turn: FeedTurn, error: TableTransactionError,
                own: int, tail: int) -> None:
        """A failed transaction of ``own`` write operations then ``tail`` feed steps: the
        write whose operation failed gets the failure, a lost feed row reads the head
        again, and a failure that names no one operation splits the group."""
        index: int = error.index
        single = len(group) == 1
        if tail and own <= index < own + tail:
            for at, gave_up in turn.moved().items():
                group[at].finish(error=gave_up)
            return
        if 0 <= index < own and (single or error.status_code in _OWN_FAILURES):
            for ticket in group:
                if index < len(ticket.steps):
                    ticket.finish(error=_step_failed(index, error))
                    return
                index -= len(ticket.steps)
        if single:
            group[0].finish(error=_step_failed(index, error))
            return
        for ticket in group:
            ticket.alone = True


def _step_failed(index: int, error: TableTransactionError) -> StepFailed:
    """The failure of operation ``index`` of one write's batch, caused by ``error`` (as
    ``raise StepFailed(...) from error`` would leave it)."""
    failed = StepFailed(index, error)
    failed.__cause__ = error
    return failed


def _fail_all(group: Sequence[_Ticket[Any]], error: BaseException) -> None:
    """Every write of ``group`` fails as the transaction did (storage unavailable, or the
    feed refused them all)."""
    for n, ticket in enumerate(group):
        ticket.finish(error=error if n == 0 else copy.copy(error))


def _take(queue: deque[_Ticket[W]]) -> list[_Ticket[W]]:
    """The front of ``queue`` that goes in one transaction: the first ticket, then the
    ones after it while they fit and touch no row already taken (a write that does not is
    kept, with every write after it, for the next transaction)."""
    first = queue.popleft()
    group = [first]
    if first.alone:
        return group
    operations = 1 + len(first.steps) + first.write.event_count
    size, rows = first.size, set(first.rows)
    while queue:
        ticket = queue[0]
        more = len(ticket.steps) + ticket.write.event_count
        if (ticket.alone or operations + more > MAX_BATCH or size + ticket.size > MAX_PAYLOAD
                or not rows.isdisjoint(ticket.rows)):
            break
        group.append(queue.popleft())
        operations += more
        size += ticket.size
        rows |= ticket.rows
    return group


def _payload(batch: Sequence[Step], write: Write) -> int:
    """The bytes ``batch`` and its events add to a transaction."""
    operations = len(batch) + write.event_count
    return (sum(entity_size(step.entity) for step in batch) + write.event_bytes
            + OPERATION_OVERHEAD * operations)
