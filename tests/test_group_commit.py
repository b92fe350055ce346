"""Group commit on Table Storage (issue 26): a tenant's writes queued behind a transaction in
flight share the next one, each with its own results, events and positions, and one bad
write never fails another (Azurite, the real SDK)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from azure.data.tables import TableClient, TableTransactionError

from scim_core.events import drafts
from scim_core.events.model import EventType
from scim_core.kinds import Kind
from scim_core.retry import FEED_RACE
from scim_core.store.base import IndexKey, Member, MemberChange, Meta, Record
from scim_core.store.errors import KeyTaken, StorageUnavailable
from scim_core.store.tables import TableStore, keys
from scim_core.store.tables.feed import FEED_ROW, FeedWrite
from tests.azurite import FAST_CLIENT_OPTIONS, TableHarness

pytestmark = pytest.mark.timeout(300)

TENANT = "default"
NOW = "2026-12-08T00:00:00Z"
PARTITION = keys.partition_key(TENANT)


class GatedClient(TableClient):
    """The real table client. It records each transaction it sends (the RowKeys, and the
    status of a failure) and the reads of the feed row; ``hooks[n]`` runs just before the
    n-th transaction recorded in ``sent`` is sent; when ``gate`` is set, the next
    transaction waits for it before it is sent (``entered`` is set once it waits)."""

    gate: threading.Event | None
    entered: threading.Event
    sent: list[list[str]]
    failed: list[int | None]
    hooks: dict[int, Callable[[], object]]
    feed_reads: int

    def submit_transaction(self, operations: Iterable[Any],
                           **kwargs: Any) -> list[Mapping[str, Any]]:
        listed = list(operations)
        hook = self.hooks.pop(len(self.sent), None)
        self.sent.append([str(op[1]["RowKey"]) for op in listed])
        if hook is not None:
            hook()
        gate, self.gate = self.gate, None
        if gate is not None:
            self.entered.set()
            assert gate.wait(30)
        try:
            result: list[Mapping[str, Any]] = super().submit_transaction(listed, **kwargs)
        except TableTransactionError as error:
            self.failed.append(error.status_code)
            raise
        return result

    def get_entity(self, partition_key: str, row_key: str, **kwargs: Any) -> Any:
        if row_key == FEED_ROW:
            self.feed_reads += 1
        return super().get_entity(partition_key, row_key, **kwargs)


def gated_store(harness: TableHarness) -> tuple[TableStore, GatedClient]:
    """A store ("process") of its own on the harness's table, on a ``GatedClient``."""
    client = GatedClient.from_connection_string(
        harness.azurite.connection_string, table_name=harness.client.table_name,
        **FAST_CLIENT_OPTIONS)
    assert isinstance(client, GatedClient)
    client.gate, client.entered = None, threading.Event()
    client.sent, client.failed, client.hooks, client.feed_reads = [], [], {}, 0
    store = TableStore(client)
    harness.extra.append(store)
    return store, client


def user_record(name: str) -> tuple[Record, list[IndexKey], list[Any]]:
    """A new user named ``name``: its record, its unique userName key and its event."""
    user_id = str(uuid.uuid4())
    meta = Meta(NOW, NOW, f"v-{name}")
    resource = {"id": user_id, "userName": name,
                "meta": {"lastModified": NOW, "version": meta.version}}
    return (Record(Kind.USER, user_id, {"userName": name}, meta),
            [IndexKey("userName", name, True)], drafts.created(Kind.USER, resource))


@dataclass
class Outcome:
    """What one concurrent write returned or raised."""

    name: str
    value: Any = None
    error: BaseException | None = None


def run_queued(store: TableStore, client: GatedClient, first: Callable[[], Any],
               writes: dict[str, Callable[[], Any]]) -> tuple[Any, dict[str, Outcome]]:
    """Send ``first``, hold its transaction until every one of ``writes`` (started one by
    one, each once the one before is queued) waits behind it, then let them all go; the
    outcome of ``first`` and of each write."""
    client.gate, client.entered = threading.Event(), threading.Event()
    gate = client.gate
    lanes = store.feeds.lanes
    outcomes = {name: Outcome(name) for name in ["(first)", *writes]}

    def call(name: str, write: Callable[[], Any]) -> None:
        try:
            outcomes[name].value = write()
        except BaseException as error:  # reported through the outcome
            outcomes[name].error = error

    threads = [threading.Thread(target=call, args=("(first)", first))]
    threads[0].start()
    assert client.entered.wait(30)
    for n, (name, write) in enumerate(writes.items(), 1):
        threads.append(threading.Thread(target=call, args=(name, write)))
        threads[-1].start()
        deadline = time.monotonic() + 30
        while lanes.queued(PARTITION) < n:
            assert time.monotonic() < deadline, "a write never queued"
            time.sleep(0.001)
    gate.set()
    for thread in threads:
        thread.join(60)
    first_outcome = outcomes.pop("(first)")
    assert first_outcome.error is None, first_outcome.error
    return first_outcome.value, outcomes


def create(store: TableStore, name: str) -> Callable[[], Record]:
    """A create of user ``name`` through ``store``, to run later."""
    record, indexes, events = user_record(name)
    return lambda: store.tenant(TENANT).create(record, indexes, events=events)


def test_queued_creates_share_one_transaction_each_with_its_own_etag_and_event(
        table_harness: TableHarness) -> None:
    """Five creates queued behind a transaction in flight go in ONE next transaction (two
    transactions for six writes); each gets back its own document's etag, and its own
    event at its own position, in the order they queued, 1..6 without a gap."""
    store, client = gated_store(table_harness)
    names = [f"user{n}@contoso.example" for n in range(1, 6)]
    first, outcomes = run_queued(store, client, create(store, "user0@contoso.example"),
                                 {name: create(store, name) for name in names})
    assert all(outcome.error is None for outcome in outcomes.values())
    assert len(client.sent) == 2 and client.failed == []
    tenant = store.tenant(TENANT)
    records = [first, *(outcomes[name].value for name in names)]
    for record in records:
        stored = tenant.get(Kind.USER, record.id)
        assert stored is not None and stored.etag == record.etag
    events = tenant.events(after=0, limit=100)
    assert [(e.position, e.type, e.resource_id) for e in events] == [
        (n, EventType.USER_CREATED, record.id) for n, record in enumerate(records, 1)]
    assert tenant.count(Kind.USER) == 6


def test_a_duplicate_username_in_a_combined_transaction_fails_only_that_write(
        table_harness: TableHarness) -> None:
    """Four creates queued together, one of them a userName already taken: storage
    refuses the combined transaction (409); the duplicate gets KeyTaken for its userName,
    the other three commit in the next transaction with gapless positions and nothing of
    the duplicate is stored or in the feed."""
    store, client = gated_store(table_harness)
    taken, indexes, events = user_record("taken@contoso.example")
    store.tenant(TENANT).create(taken, indexes, events=events)
    client.sent.clear()
    writes = {name: create(store, name) for name in
              ["a@contoso.example", "b@contoso.example", "taken@contoso.example",
               "c@contoso.example"]}
    _, outcomes = run_queued(store, client, create(store, "first@contoso.example"), writes)
    duplicate = outcomes.pop("taken@contoso.example")
    assert isinstance(duplicate.error, KeyTaken)
    assert duplicate.error.key == IndexKey("userName", "taken@contoso.example", True)
    assert all(outcome.error is None for outcome in outcomes.values())
    assert client.failed == [409]
    combined, again = client.sent[1], client.sent[2]
    ids = {name: outcome.value.id for name, outcome in outcomes.items()}
    assert all(keys.document_key(Kind.USER, i) in combined for i in ids.values())
    assert all(keys.document_key(Kind.USER, i) in again for i in ids.values())
    tenant = store.tenant(TENANT)
    events = tenant.events(after=0, limit=100)
    assert [e.position for e in events] == [1, 2, 3, 4, 5]
    assert [e.resource_id for e in events[2:]] == [ids[name] for name in writes
                                                   if name in ids]
    assert [r.id for r in tenant.lookup(Kind.USER, IndexKey(
        "userName", "taken@contoso.example", True))] == [taken.id]
    assert tenant.count(Kind.USER) == 5


def test_two_member_adds_on_one_group_queued_together_go_one_after_the_other(
        table_harness: TableHarness) -> None:
    """Two member adds to one group (both write the group's row) queued together never
    share a transaction (storage refuses a row twice in one); both land, in the order they
    queued: the group holds both members, its meta is the second's, and the feed has the
    first's event before the second's."""
    store, client = gated_store(table_harness)
    tenant = store.tenant(TENANT)
    users = []
    for name in ("m1", "m2", "other"):
        record, indexes, events = user_record(f"{name}@contoso.example")
        users.append(tenant.create(record, indexes, events=events).id)
    group_id = str(uuid.uuid4())
    tenant.create(Record(Kind.GROUP, group_id, {"displayName": "g"}, Meta(NOW, NOW, "g0")),
                  [IndexKey("displayName", "g", True)])
    before = tenant.position()
    client.sent.clear()
    group_row = keys.document_key(Kind.GROUP, group_id)

    def add(user_id: str, version: str) -> Callable[[], str | None]:
        return lambda: tenant.change_members(
            group_id, last_modified=NOW, version=version,
            members=MemberChange(add=(Member(user_id),)))

    _, outcomes = run_queued(store, client, create(store, "first@contoso.example"),
                             {"one": add(users[0], "g1"), "two": add(users[1], "g2")})
    assert all(outcome.error is None for outcome in outcomes.values())
    assert client.failed == []
    assert all(sent.count(group_row) <= 1 for sent in client.sent)
    assert [group_row in sent for sent in client.sent] == [False, True, True]
    assert sorted(m.value for m in tenant.members(group_id)) == sorted(users[:2])
    stored = tenant.get(Kind.GROUP, group_id)
    assert stored is not None and stored.meta.version == "g2"
    assert stored.etag == outcomes["two"].value
    events = tenant.events(after=before, limit=100)
    assert [(e.type, e.members) for e in events[1:]] == [
        (EventType.GROUP_MEMBERS_ADDED, (users[0],)),
        (EventType.GROUP_MEMBERS_ADDED, (users[1],))]
    assert [e.position for e in events] == list(range(before + 1, before + 4))


def test_a_group_that_loses_the_feed_row_reads_it_once_and_resends_once(
        table_harness: TableHarness) -> None:
    """Another process moves the feed row just before three writes of this process,
    queued together, are sent: their combined transaction fails on the feed row (412), the
    head is read once, the same three are sent once more, and all land after the other
    process's event, gapless, in the order they queued."""
    store, client = gated_store(table_harness)
    other = table_harness.another_store()
    tenant = store.tenant(TENANT)
    create(store, "warm@contoso.example")()
    assert other.tenant(TENANT).position() == 1  # the other process's head is cached
    client.sent.clear()
    client.feed_reads = 0
    client.hooks = {1: create(other, "other@contoso.example")}
    names = ["x@contoso.example", "y@contoso.example", "z@contoso.example"]
    _, outcomes = run_queued(store, client, create(store, "first@contoso.example"),
                             {name: create(store, name) for name in names})
    assert all(outcome.error is None for outcome in outcomes.values())
    assert client.failed == [412]
    lost, again = (_without_events(sent) for sent in client.sent[1:])
    assert len(client.sent) == 3 and lost == again and len(lost) == 1 + 3 * 2
    assert client.feed_reads == 1
    events = tenant.events(after=0, limit=100)
    assert [e.position for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.resource_id for e in events[3:]] == [outcomes[name].value.id for name in names]


def _without_events(sent: list[str]) -> list[str]:
    """A transaction's RowKeys but its event rows (which move with the positions)."""
    return [row_key for row_key in sent if not row_key.startswith("event:")]


def test_a_write_gives_up_on_the_feed_row_only_after_the_time_bound(
        table_harness: TableHarness) -> None:
    """Lost races alone never make a write give up before ``FEED_RACE.seconds``: 500
    losses in a row are retried (the old bound was 60 tries); once the write has waited
    the policy's time, the next loss raises StorageUnavailable."""
    write = FeedWrite(table_harness.store.feeds, PARTITION, TENANT, lambda _: [])
    for _ in range(500):
        write.lost()
    write._began -= FEED_RACE.seconds
    with pytest.raises(StorageUnavailable):
        write.lost()


WRITERS = 6
WRITES = 15


def test_concurrent_writers_on_three_processes_keep_the_feed_gapless(
        table_harness: TableHarness) -> None:
    """6 threads x 15 writes (creates, then a member add each to a shared group) on one
    tenant through three stores: nothing fails (no 503 for contention), positions are
    exactly 1..n with every write's event once, each writer's events in its own order,
    the group holds every member and the counts are right."""
    primary = table_harness.store
    stores = [primary, table_harness.another_store(), table_harness.another_store()]
    group_id = str(uuid.uuid4())
    primary.tenant(TENANT).create(
        Record(Kind.GROUP, group_id, {"displayName": "all"}, Meta(NOW, NOW, "g0")),
        [IndexKey("displayName", "all", True)])
    written: list[list[str]] = [[] for _ in range(WRITERS)]
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        tenant = stores[writer % len(stores)].tenant(TENANT)
        try:
            for n in range(WRITES):
                record, indexes, events = user_record(f"w{writer}-{n}@contoso.example")
                written[writer].append(tenant.create(record, indexes, events=events).id)
            for n, user_id in enumerate(written[writer]):
                tenant.change_members(group_id, last_modified=NOW, version=f"{writer}-{n}",
                                      members=MemberChange(add=(Member(user_id),)))
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not failures, failures[0]
    tenant = primary.tenant(TENANT)
    events = tenant.events(after=0, limit=1000)
    total = 2 * WRITERS * WRITES  # the group was created without an event
    assert [e.position for e in events] == list(range(1, total + 1))
    created = {e.resource_id: e.position for e in events if e.type is EventType.USER_CREATED}
    added = {e.members[0]: e.position for e in events
             if e.type is EventType.GROUP_MEMBERS_ADDED}
    for ids in written:
        assert [created[i] for i in ids] == sorted(created[i] for i in ids)
        assert [added[i] for i in ids] == sorted(added[i] for i in ids)
    assert len(created) == len(added) == WRITERS * WRITES
    assert sorted(m.value for m in tenant.members(group_id)) == sorted(
        i for ids in written for i in ids)
    assert tenant.count(Kind.USER) == WRITERS * WRITES
