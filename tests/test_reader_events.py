"""The reader library's change feed (scim_reader events, position, follow) on Azurite: it
reads back what the real SCIM service wrote, in order, each event once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import pytest

from scim_core import Settings, build_api
from scim_core.app import build_admin
from scim_core.auth import StaticTokenSource
from scim_core.events import EVENT_TYPES, EventType
from scim_core.events import Event as CoreEvent
from scim_core.store.tables import TableStore, keys
from scim_core.store.tables.feed import (
    EVENT_PREFIX,
    EVENTS_END,
    FEED_ROW,
    event_entity,
    event_from_entity,
    event_key,
)
from scim_core.tenants import ENABLED, Tenant
from scim_reader import (
    CursorExpired,
    DirectoryReader,
    Event,
    EventPage,
    InvalidCursor,
    TableNotFound,
    TenantReader,
    UnreadableRow,
    layout,
)
from scim_reader.models import event_from_row
from tests.azurite import FAST_CLIENT_OPTIONS, TableHarness
from tests.kvfake import FakeKeyVault
from tests.support import ENTERPRISE, TOKEN, FunctionClient, use_api
from tests.test_table_store import HOSTILE

pytest_plugins = ["tests.azurite"]
pytestmark = pytest.mark.timeout(300)

ACME_TOKEN = "acme-token-0123456789abcdefghijklmnopqrstuv"
REGISTERED = "2026-12-01T00:00:00Z"
FUTURE = "9999-12-31T23:59:59Z"
WAIT_SECONDS = 60.0


@dataclass
class Feeds:
    """The SCIM API (default tenant and ``acme``) on an Azurite table, and a reader of it."""

    harness: TableHarness
    vault: FakeKeyVault
    reader: DirectoryReader
    api: FunctionClient
    acme_api: FunctionClient

    @property
    def store(self) -> TableStore:
        return self.harness.store

    def tenant(self, tenant_id: str = "default") -> TenantReader:
        return self.reader.tenant(tenant_id)


@pytest.fixture
def feeds(table_harness: TableHarness) -> Iterator[Feeds]:
    """The real service on Azurite for ``default`` and a registered ``acme`` (its token in
    the Key Vault fake), and a reader over the same table with its own client."""
    store = table_harness.store
    with FakeKeyVault() as vault:
        vault.add_version("scim-token-acme", ACME_TOKEN)
        store.tenant_registry().create(Tenant("acme", "Acme", ENABLED, REGISTERED, REGISTERED))
        settings = Settings(store="memory", bearer_token=TOKEN, tenant_cache_seconds=0)
        use_api(build_api(settings, store=store, tokens=StaticTokenSource(TOKEN),
                          secrets=vault.client()))
        reader = DirectoryReader.from_connection_string(
            table_harness.azurite.connection_string, table=table_harness.client.table_name,
            **FAST_CLIENT_OPTIONS)
        with reader:
            yield Feeds(table_harness, vault, reader, FunctionClient(),
                        FunctionClient("acme", ACME_TOKEN))


def ok(result: Any) -> Any:
    assert result.status in (200, 201, 204), result.body[:300]
    return result.json


def replace_op(path: str, value: Any) -> dict[str, Any]:
    return {"op": "replace", "path": path, "value": value}


def make_users(api: FunctionClient, count: int, prefix: str = "user") -> list[str]:
    """``count`` users created through the API (one ``user.created`` each); their ids."""
    return [api.create_user(f"{prefix}{n}@contoso.example")["id"] for n in range(count)]


def read_all(reader: TenantReader, after: str | int | None = None, *,
             limit: int = 1000) -> list[Event]:
    """Every event after ``after``, page by page, until a page comes back empty."""
    found: list[Event] = []
    cursor: str | int | None = after
    while True:
        page = reader.events(cursor, limit=limit)
        if not page.events:
            assert page.cursor == str(cursor or 0)
            return found
        assert len(page.events) <= limit
        found += page.events
        cursor = page.cursor


def comparable(event: Event | CoreEvent) -> tuple[Any, ...]:
    """Every field of an event of either library, in the reader's terms."""
    return (event.id, event.tenant, event.position, str(event.type), event.time,
            event.resource_type, event.resource_id, event.version,
            None if event.resource is None else dict(event.resource), tuple(event.attributes),
            tuple(event.members))


class Follower:
    """``follow`` running in a thread, collecting what it yields (and what it raised)."""

    def __init__(self, start: Callable[[], Iterator[Event]]) -> None:
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self._start = start
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._start():
                with self._lock:
                    self.events.append(event)
        except BaseException as error:  # surfaced to the test by wait_for and join
            self.error = error

    def positions(self) -> list[int]:
        with self._lock:
            return [e.position for e in self.events]

    def wait_for(self, count: int) -> None:
        """Until ``count`` events are in (or the follower failed, or a minute passed)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while len(self.positions()) < count and self.error is None:
            assert time.monotonic() < deadline, f"only {self.positions()} after a minute"
            time.sleep(0.02)
        assert self.error is None, repr(self.error)

    def join(self) -> None:
        self._thread.join(WAIT_SECONDS)
        assert not self._thread.is_alive(), "follow did not stop"
        assert self.error is None, repr(self.error)


# -- what the service writes, read back ------------------------------------------------------


def test_events_written_by_the_api_read_back_in_order_with_their_payloads(
        feeds: Feeds) -> None:
    """Every kind of change made through the API reads back as its event, in commit order,
    with the resource the API answered, the changed attributes and the members, and equal
    to what scim_core's own store reads."""
    api = feeds.api
    alice = api.create_user("alice@contoso.example", active=True,
                            **{ENTERPRISE: {"department": "R&D"}})
    bob = api.create_user("bob@contoso.example")
    deactivated = ok(api.patch_ops(f"/Users/{alice['id']}", replace_op("active", "False"),
                                   replace_op("displayName", "Alice")))
    reactivated = ok(api.patch_ops(f"/Users/{alice['id']}", replace_op("active", True)))
    group = api.create_group("Engineering", members=[{"value": alice["id"]},
                                                     {"value": bob["id"]}])
    ok(api.patch_ops(f"/Groups/{group['id']}", replace_op("displayName", "Eng")))
    renamed = ok(api.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"}))
    ok(api.patch_ops(f"/Groups/{group['id']}",
                     {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'}))
    department = ok(api.patch_ops(f"/Users/{alice['id']}",
                                  replace_op(f"{ENTERPRISE}:department", "Ops")))
    ok(api.delete(f"/Users/{bob['id']}"))
    ok(api.delete(f"/Groups/{group['id']}"))

    events = read_all(feeds.tenant())
    assert [(e.type, e.resource_id) for e in events[:10]] == [
        ("user.created", alice["id"]), ("user.created", bob["id"]),
        ("user.deactivated", alice["id"]), ("user.updated", alice["id"]),
        ("user.reactivated", alice["id"]),
        ("group.created", group["id"]), ("group.members_added", group["id"]),
        ("group.updated", group["id"]), ("group.members_removed", group["id"]),
        ("user.updated", alice["id"])]
    # docs/events.md does not order a deletion's events (a user in many groups leaves some
    # of them in earlier transactions)
    bob_gone = {e.type: e for e in events[10:12]}
    assert {t: e.resource_id for t, e in bob_gone.items()} == {
        "user.deleted": bob["id"], "group.members_removed": group["id"]}
    assert [(e.type, e.resource_id) for e in events[12:]] == [("group.deleted", group["id"])]
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    assert all(e.id == f"default:{e.position}" and e.tenant == "default" for e in events)
    assert events[0].resource == alice and events[1].resource == bob
    assert events[2].resource == deactivated and events[3].resource == deactivated
    assert events[3].attributes == ("displayName",)
    assert events[4].resource == reactivated
    assert events[5].resource == {k: v for k, v in group.items() if k != "members"}
    assert set(events[6].members) == {alice["id"], bob["id"]} and events[6].resource is None
    assert events[7].resource == renamed and events[7].attributes == ("displayName",)
    assert events[8].members == (alice["id"],)
    assert events[9].attributes == (f"{ENTERPRISE}:department",)
    assert events[9].resource == department
    assert bob_gone["group.members_removed"].members == (bob["id"],)
    assert bob_gone["group.members_removed"].resource is None
    assert bob_gone["user.deleted"].resource == bob
    for event in events:
        if event.resource is not None:
            meta = event.resource["meta"]
            assert event.version == meta["version"]
            if event.type.endswith(".deleted"):  # the resource as it was, at deletion time
                assert event.time >= meta["lastModified"]
            else:
                assert event.time == meta["lastModified"]
        assert event.resource_type == ("User" if event.type.startswith("user.") else "Group")
    core = feeds.store.tenant("default").events(after=0, limit=1000)
    assert [comparable(e) for e in events] == [comparable(e) for e in core]
    assert feeds.tenant().position() == str(len(events)) == str(feeds.store.tenant(
        "default").position())


def test_tenant_state_events_read_back(feeds: Feeds) -> None:
    """Disabling and enabling a tenant with the admin API reads back as tenant.disabled and
    tenant.enabled after the tenant's other events, with no resource."""
    feeds.acme_api.create_user("ann@acme.example")
    admin = build_admin(Settings(store="memory"), store=feeds.store,
                        secrets=feeds.vault.client())
    admin.disable("acme")
    admin.enable("acme")
    events = read_all(feeds.tenant("acme"))
    assert [e.type for e in events] == ["user.created", "tenant.disabled", "tenant.enabled"]
    assert [(e.resource_type, e.resource_id, e.resource) for e in events[1:]] == [
        ("", "", None), ("", "", None)]
    assert all(e.time for e in events)
    assert read_all(feeds.tenant("default")) == []


# -- cursors and pages -----------------------------------------------------------------------


def test_paging_with_a_limit_and_cursor_never_repeats_or_skips(feeds: Feeds) -> None:
    """For every limit from 1 to 8, reading page by page from each page's cursor gives
    positions 1..N exactly once, in order; the page after the last keeps the cursor."""
    make_users(feeds.api, 13)
    reader = feeds.tenant()
    everything = read_all(reader)
    assert [e.position for e in everything] == list(range(1, 14))
    for limit in range(1, 9):
        pages: list[EventPage] = []
        cursor: str | None = None
        while not pages or pages[-1].events:
            pages.append(reader.events(cursor, limit=limit))
            cursor = pages[-1].cursor
        assert [e for p in pages for e in p.events] == everything
        assert [len(p.events) for p in pages[:-1]] == [limit] * (13 // limit) + (
            [13 % limit] if 13 % limit else [])
        assert all(p.cursor == str(p.events[-1].position) for p in pages[:-1])
        assert pages[-1].cursor == "13"
    assert reader.events(5, limit=2) == reader.events("5", limit=2)
    assert [e.position for e in reader.events(5, limit=2).events] == [6, 7]
    assert reader.events("0").events == reader.events().events == tuple(everything)
    assert reader.events(13) == EventPage((), "13")
    assert feeds.reader.events("default", after="11") == reader.events("11")


def test_malformed_cursors_and_limits_are_refused(feeds: Feeds) -> None:
    """A cursor that is not a position (text, signs, spaces, non-ASCII digits, negative,
    too long, a bool) raises InvalidCursor, a ValueError saying what a cursor is; so does
    follow, at the call; a limit below 1 or a poll of 0 is a ValueError."""
    make_users(feeds.api, 1)
    reader = feeds.tenant()
    for bad in ("abc", "-1", "+1", "1.5", "", " 1", "1\n", "\u0661", "1" * 17, -1, 10 ** 16,
                True, 1.0):
        with pytest.raises(InvalidCursor, match="position") as raised:
            reader.events(bad)  # type: ignore[arg-type]
        assert isinstance(raised.value, ValueError)
        with pytest.raises(InvalidCursor):
            reader.follow(bad)  # type: ignore[arg-type]
    assert len(reader.events("0000000000000000").events) == 1
    for call in (lambda: reader.events(limit=0), lambda: reader.follow(limit=0),
                 lambda: reader.follow(poll_seconds=0)):
        with pytest.raises(ValueError):
            call()


def test_a_gap_after_the_cursor_without_retention_waits_for_the_missing_event(
        feeds: Feeds) -> None:
    """An event row not visible yet (a batch still landing on an emulator) stops the page
    before it, without CursorExpired; once the row is there, reading on from the same
    cursor gives it and what follows."""
    make_users(feeds.api, 5)
    client = feeds.harness.client
    partition = keys.partition_key("default")
    third = client.get_entity(partition, event_key(3))
    client.delete_entity(partition, event_key(3))
    reader = feeds.tenant()
    page = reader.events()
    assert [e.position for e in page.events] == [1, 2] and page.cursor == "2"
    assert reader.events(page.cursor) == EventPage((), "2")
    client.create_entity(third)
    assert [e.position for e in reader.events(page.cursor).events] == [3, 4, 5]


# -- retention and resynchronising -----------------------------------------------------------


def test_a_cursor_older_than_retention_raises_cursor_expired_and_position_resyncs(
        feeds: Feeds) -> None:
    """After retention removed events 1-3, any cursor before 3 raises CursorExpired with
    the resync advice (events after 3 still there or not); position() taken then lets a
    resync follow on without missing the next change."""
    ids = make_users(feeds.api, 5)
    store = feeds.store.tenant("default")
    reader = feeds.tenant()
    assert store.trim(before=FUTURE, limit=3) == 3
    for cursor in (None, "0", 1, "2"):
        with pytest.raises(CursorExpired, match="resynchronise") as raised:
            reader.events(cursor)
        assert "position()" in str(raised.value)
        assert (raised.value.cursor, raised.value.floor) == (int(cursor or 0), 3)
    assert [e.position for e in reader.events("3").events] == [4, 5]
    with pytest.raises(CursorExpired):
        next(reader.follow(None, poll_seconds=0.01))

    resync_from = reader.position()
    assert resync_from == "5"
    assert {u.id for u in reader.list_users()} == set(ids)
    late = feeds.api.create_user("late@contoso.example")
    page = reader.events(resync_from)
    assert [(e.position, e.type, e.resource_id) for e in page.events] == [
        (6, "user.created", late["id"])]
    assert store.trim(before=FUTURE, limit=100) == 3
    with pytest.raises(CursorExpired, match="retention"):
        reader.events("4")  # no event row is left at all: the feed row says why
    assert reader.events("6") == EventPage((), "6")


def test_a_cursor_ahead_of_a_feed_that_started_over_raises_cursor_expired(
        feeds: Feeds) -> None:
    """A partition emptied with its feed row (its table deleted and made again) and written
    again starts its feed at 1: a reader whose cursor is past the feed's position is told
    to resynchronise instead of waiting forever and skipping the new events."""
    make_users(feeds.api, 4)
    reader = feeds.tenant()
    assert reader.position() == "4"
    feeds.store.tenant("default").purge(limit=1000)
    feeds.store.table.delete_entity("default", "feed")  # purge keeps it: a tombstone
    feeds.store.feeds.forget("default")
    assert reader.position() == "0" and reader.events("4") == EventPage((), "4")
    make_users(feeds.api, 2, prefix="again")
    with pytest.raises(CursorExpired, match="started over"):
        reader.events("4")
    assert [e.position for e in reader.events().events] == [1, 2]


# -- follow ----------------------------------------------------------------------------------


def test_follow_in_a_thread_picks_up_later_events_and_stops_on_request(feeds: Feeds) -> None:
    """follow from a cursor yields what was there and then each event written while it
    polls, each once and in order (pages of 2 included), and ends when its
    threading.Event is set."""
    make_users(feeds.api, 3)
    stop = threading.Event()
    follower = Follower(lambda: feeds.tenant().follow("1", poll_seconds=0.02, stop=stop,
                                                      limit=2))
    follower.wait_for(2)
    make_users(feeds.api, 3, prefix="second")
    follower.wait_for(5)
    ok(feeds.api.patch_ops(f"/Users/{follower.events[0].resource_id}",
                           replace_op("displayName", "Two")))
    follower.wait_for(6)
    stop.set()
    follower.join()
    assert follower.positions() == list(range(2, 8))
    assert [e.type for e in follower.events] == ["user.created"] * 5 + ["user.updated"]
    assert [comparable(e) for e in follower.events] == [
        comparable(e) for e in feeds.store.tenant("default").events(after=1, limit=100)]


def test_follow_stops_on_a_callable_and_ends_a_wait_early(feeds: Feeds) -> None:
    """With a callable stop and a poll of an hour, follow (through DirectoryReader) still
    ends soon after the callable turns true, having yielded every event once."""
    make_users(feeds.acme_api, 2)
    stopping = threading.Event()
    follower = Follower(lambda: feeds.reader.follow("acme", poll_seconds=3600,
                                                    stop=stopping.is_set))
    follower.wait_for(2)
    stopping.set()
    follower.join()
    assert follower.positions() == [1, 2]
    assert {e.tenant for e in follower.events} == {"acme"}


def test_follow_resumed_from_the_last_position_handled_misses_nothing(feeds: Feeds) -> None:
    """follow stops at the first event after its stop turns true, even mid-page; following
    again from the last position handled sees every event exactly once across both runs."""
    make_users(feeds.api, 6)
    handled: list[int] = []
    reader = feeds.tenant()
    for event in reader.follow(stop=lambda: len(handled) >= 4, limit=3):
        handled.append(event.position)
    assert handled == [1, 2, 3, 4]
    make_users(feeds.api, 2, prefix="more")
    for event in reader.follow(handled[-1], stop=lambda: len(handled) >= 8):
        handled.append(event.position)
    assert handled == list(range(1, 9))


# -- tenants, rows, errors -------------------------------------------------------------------


def test_tenants_feeds_are_isolated(feeds: Feeds) -> None:
    """Each tenant's reader sees only its own events, each feed numbered from 1; another
    tenant's position as a cursor gives nothing of it."""
    mine = make_users(feeds.api, 3)
    theirs = make_users(feeds.acme_api, 2, prefix="acme")
    default, acme = read_all(feeds.tenant()), read_all(feeds.tenant("acme"))
    assert [(e.tenant, e.position, e.resource_id) for e in default] == [
        ("default", n + 1, i) for n, i in enumerate(mine)]
    assert [(e.tenant, e.position, e.resource_id) for e in acme] == [
        ("acme", n + 1, i) for n, i in enumerate(theirs)]
    assert {e.id for e in default}.isdisjoint({e.id for e in acme})
    assert feeds.reader.events("acme").events == tuple(acme)
    assert (feeds.tenant().position(), feeds.reader.position("acme")) == ("3", "2")
    assert read_all(feeds.tenant("globex")) == [] and feeds.tenant("globex").position() == "0"


def test_the_reader_event_layout_and_row_parsing_are_the_stores() -> None:
    """scim_reader parses an event row of every type exactly as scim_core's
    event_from_entity does (a resource split into chunks and hostile tenants and ids
    included), and the store's feed keys are the layout's own."""
    assert event_key is layout.event_key
    assert (layout.FEED_ROW, layout.EVENT_PREFIX, layout.EVENTS_END) == (
        FEED_ROW, EVENT_PREFIX, EVENTS_END)
    assert layout.events_after(7) == (event_key(7), EVENTS_END)
    resources: list[dict[str, Any] | None] = [
        None, {"id": "u", "userName": "x"}, {"id": "big", "nickName": "é漢😀" * 20_000}]
    checked = 0
    for n, event_type in enumerate(sorted(EVENT_TYPES)):
        for tenant in ("default", HOSTILE[n % len(HOSTILE)] or "t"):
            for resource in resources:
                event = CoreEvent(tenant=tenant, position=n + 1, type=EventType(event_type),
                                  time="2026-01-02T03:04:05Z", resource_type="Group",
                                  resource_id=HOSTILE[(n + 3) % len(HOSTILE)],
                                  version='W/"7"', resource=resource,
                                  attributes=("displayName", f"{ENTERPRISE}:manager"),
                                  members=("u1", "u/2"))
                entity = event_entity(keys.partition_key(tenant), event)
                read = event_from_row(entity)
                assert comparable(read) == comparable(event_from_entity(entity))
                assert comparable(read) == comparable(event)
                checked += 1
    assert checked == len(EVENT_TYPES) * 6
    assert {f.name for f in fields(Event)} == {
        "id", "tenant", "position", "type", "time", "resource_type", "resource_id", "version",
        "resource", "attributes", "members"}
    broken = event_entity("p", CoreEvent(tenant="t", position=1, type=EventType.USER_CREATED,
                                         time="now"))
    del broken["type"]
    with pytest.raises(UnreadableRow, match="event:0000000000000001"):
        event_from_row(broken)


def test_a_missing_table_raises_table_not_found_for_events(feeds: Feeds) -> None:
    """events and position on a table that does not exist raise TableNotFound naming it,
    rather than reading as an empty feed."""
    with DirectoryReader.from_connection_string(
            feeds.harness.azurite.connection_string, table="nosuchtable2",
            **FAST_CLIENT_OPTIONS) as reader:
        for read in (lambda: reader.tenant().events(), reader.tenant().position):
            with pytest.raises(TableNotFound, match="nosuchtable2"):
                read()
