"""Retention of the change feed: trim_feeds on both stores, the timer function in
function_app and ``python -m scim_core.admin events trim|show``."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import TableClient
from azure.functions.timer import TimerRequest

import function_app
from scim_core import admin
from scim_core.events.model import EventDraft, EventType
from scim_core.operations.retention import (
    DEFAULT_BUDGET_SECONDS,
    RetentionReport,
    cutoff,
    retained_tenants,
    trim_feeds,
)
from scim_core.store import MemoryStore, Store, TenantStore
from scim_core.store.errors import CursorExpired
from scim_core.store.tables import TableStore
from scim_core.tenants.model import DELETING, DISABLED, ENABLED, Tenant
from scim_core.tenants.registry import TenantRegistry
from tests.azurite import (
    ACCOUNT_KEY,
    FAST_CLIENT_OPTIONS,
    Fault,
    FaultProxy,
    TableHarness,
)
from tests.conftest import make_api
from tests.support import FunctionClient, use_api

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
REPO = Path(__file__).absolute().parents[1]
EMPTY = Path(__file__).absolute().parent / "no-local-settings"
"""A directory without local.settings.json: the admin command sees no app settings."""


def stamp(moment: datetime) -> str:
    """An event time as the service writes it (meta.lastModified)."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_events(store: Store, tenant: str, ages_in_days: Sequence[float], *,
                 now: datetime = NOW) -> list[int]:
    """Append one ``user.updated`` event per age (days before ``now``), oldest first in the
    order given, in transactions of at most 50; returns their positions."""
    feed = store.tenant(tenant)
    positions: list[int] = []
    drafts = [EventDraft(EventType.USER_UPDATED, stamp(now - timedelta(days=age)), "User",
                         f"user-{i}", f'W/"{i}"', attributes=("displayName",))
              for i, age in enumerate(ages_in_days)]
    for start in range(0, len(drafts), 50):
        chunk = drafts[start:start + 50]
        last = feed.append(chunk)
        assert last is not None
        positions += range(last - len(chunk) + 1, last + 1)
    return positions


def kept(store: Store, tenant: str) -> list[int]:
    """The positions a reader gets from the oldest event still kept."""
    feed = store.tenant(tenant)
    after = 0
    while True:
        try:
            return [event.position for event in feed.events(after=after, limit=10_000)]
        except CursorExpired:
            after += 1


def register(store: Store, tenant: str, state: str = ENABLED) -> None:
    when = "2026-01-01T00:00:00Z"
    store.tenant_registry().create(Tenant(tenant, tenant.title(), state, when, when))


class CountingStore:
    """A real store whose tenants' ``trim`` calls are recorded (limit, removed), and
    whose clock, when given, moves on by ``step_seconds`` per call."""

    def __init__(self, store: Store, clock: FakeMonotonic | None = None,
                 step_seconds: float = 0.0) -> None:
        self.store = store
        self.calls: list[tuple[str, int, int]] = []
        self.clock = clock
        self.step_seconds = step_seconds

    def tenant(self, name: str, epoch: int | None = None) -> TenantStore:
        return CountingTenant(self, self.store.tenant(name, epoch))  # type: ignore[return-value]

    def tenant_registry(self) -> TenantRegistry:
        return self.store.tenant_registry()


class CountingTenant:
    def __init__(self, owner: CountingStore, inner: TenantStore) -> None:
        self._owner = owner
        self._inner = inner

    def trim(self, *, before: str, limit: int) -> int:
        removed = self._inner.trim(before=before, limit=limit)
        self._owner.calls.append((self._inner.tenant, limit, removed))
        if self._owner.clock is not None:
            self._owner.clock.now += self._owner.step_seconds
        return removed


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# trim_feeds on both stores -------------------------------------------------------------


def test_events_older_than_the_retention_are_removed_and_newer_kept(any_store: Store) -> None:
    """Events older than the retention go, newer ones stay, the feed's position is kept."""
    write_events(any_store, "default", [45, 40, 31, 30.5, 29.9, 10, 0])
    report = trim_feeds(any_store, days=30, now=NOW)
    assert report.counts == {"default": 4}
    assert report.before == stamp(NOW - timedelta(days=30))
    assert kept(any_store, "default") == [5, 6, 7]
    assert any_store.tenant("default").position() == 7
    again = trim_feeds(any_store, days=30, now=NOW)
    assert again.counts == {"default": 0} and again.complete


def test_trim_runs_in_bounded_steps(any_store: Store) -> None:
    """A step of 7 over 20 old events takes 3 calls, each removing at most 7."""
    write_events(any_store, "default", [40] * 20 + [1])
    counting = CountingStore(any_store)
    report = trim_feeds(counting, days=30, now=NOW, step=7)  # type: ignore[arg-type]
    assert counting.calls == [("default", 7, 7), ("default", 7, 7), ("default", 7, 6)]
    assert report.tenants[0].steps == 3 and report.tenants[0].removed == 20
    assert report.complete
    assert kept(any_store, "default") == [21]


def test_each_step_is_a_bounded_transaction_on_table_storage(
        table_harness: TableHarness) -> None:
    """On Table Storage a step of 7 writes one transaction of the floor and 7 deletes."""
    store = table_harness.store
    write_events(store, "default", [40] * 20)
    table_harness.client.batch_sizes.clear()
    trim_feeds(store, days=30, now=NOW, step=7)
    assert table_harness.client.batch_sizes == [8, 8, 7]


def test_a_reader_behind_the_floor_gets_cursor_expired(any_store: Store) -> None:
    """After trimming, a cursor older than the floor raises CursorExpired; one at it reads on."""
    write_events(any_store, "default", [40] * 10 + [2, 1])
    trim_feeds(any_store, days=30, now=NOW)
    feed = any_store.tenant("default")
    for cursor in (0, 3, 9):
        with pytest.raises(CursorExpired):
            feed.events(after=cursor, limit=100)
    assert [e.position for e in feed.events(after=10, limit=100)] == [11, 12]


def test_a_write_after_trimming_takes_the_next_position(any_store: Store) -> None:
    """With every event trimmed, the next SCIM write gets the next position, not a reused one."""
    now = datetime.now(UTC)
    write_events(any_store, "default", [40] * 4, now=now)
    assert trim_feeds(any_store, days=30, now=now).counts == {"default": 4}
    feed = any_store.tenant("default")
    assert feed.position() == 4
    assert feed.events(after=4, limit=10) == []
    use_api(make_api(any_store))
    user = FunctionClient().create_user("after-trim@x.test")
    events = feed.events(after=4, limit=10)
    assert [(e.position, e.type, e.resource_id) for e in events] == [
        (5, EventType.USER_CREATED, user["id"])]
    with pytest.raises(CursorExpired):
        feed.events(after=3, limit=10)


def test_every_tenant_is_trimmed_default_included_and_deleting_skipped(
        any_store: Store) -> None:
    """Default, enabled and disabled tenants are trimmed; a tenant being deleted is skipped."""
    register(any_store, "acme")
    register(any_store, "beta", DISABLED)
    register(any_store, "gone", DELETING)
    for tenant, old in (("default", 2), ("acme", 3), ("beta", 4), ("gone", 5)):
        write_events(any_store, tenant, [40] * old + [1])
    assert retained_tenants(any_store) == ["default", "acme", "beta"]
    report = trim_feeds(any_store, days=30, now=NOW)
    assert report.counts == {"default": 2, "acme": 3, "beta": 4}
    assert kept(any_store, "acme") == [4] and kept(any_store, "beta") == [5]
    assert kept(any_store, "gone") == [1, 2, 3, 4, 5, 6]


def test_the_default_tenant_is_trimmed_when_registered_and_skipped_when_deleting() -> None:
    """A registered default tenant is trimmed once, first; one marked deleting is not."""
    store = MemoryStore()
    register(store, "default", DISABLED)
    register(store, "acme")
    assert retained_tenants(store) == ["default", "acme"]
    store.tenant_registry().update(Tenant("default", "Default", DELETING, "", ""))
    assert retained_tenants(store) == ["acme"]


def test_the_time_budget_stops_a_run_fairly_and_the_next_run_finishes() -> None:
    """Tenants take turns; once the budget is spent no step starts, and the next run finishes."""
    store = MemoryStore()
    for tenant in ("acme", "beta"):
        register(store, tenant)
    for tenant in ("default", "acme", "beta"):
        write_events(store, tenant, [40] * 20)
    clock = FakeMonotonic()
    counting = CountingStore(store, clock, step_seconds=10)
    first = trim_feeds(counting, days=30, now=NOW, step=5,  # type: ignore[arg-type]
                       budget_seconds=25, clock=clock, start=0)
    assert [name for name, *_ in counting.calls] == ["default", "acme", "beta"]
    assert first.counts == {"default": 5, "acme": 5, "beta": 5}
    assert not first.complete and not first.failed
    second = trim_feeds(counting, days=30, now=NOW, step=5,  # type: ignore[arg-type]
                        budget_seconds=1000, clock=clock, start=0)
    assert second.counts == {"default": 15, "acme": 15, "beta": 15} and second.complete
    assert all(kept(store, t) == [] for t in ("default", "acme", "beta"))


def test_a_budget_too_short_for_every_tenant_starts_where_it_is_told() -> None:
    """Each run's first round starts at its ``start`` tenant, so a short budget reaches others
    on other runs; the report keeps the default-first order."""
    store = MemoryStore()
    for tenant in ("acme", "beta"):
        register(store, tenant)
    for tenant in ("default", "acme", "beta"):
        write_events(store, tenant, [40] * 4)
    clock = FakeMonotonic()
    counting = CountingStore(store, clock, step_seconds=10)
    report = trim_feeds(counting, days=30, now=NOW, budget_seconds=15,  # type: ignore[arg-type]
                        clock=clock, start=2)
    assert [name for name, *_ in counting.calls] == ["beta", "default"]
    assert [t.tenant for t in report.tenants] == ["default", "acme", "beta"]
    assert report.counts == {"default": 4, "acme": 0, "beta": 4}
    assert [t.done for t in report.tenants] == [True, False, True]


def test_arguments_out_of_range_are_refused() -> None:
    """A retention under one day or a step under one event raises ValueError."""
    with pytest.raises(ValueError):
        trim_feeds(MemoryStore(), days=0, now=NOW)
    with pytest.raises(ValueError):
        trim_feeds(MemoryStore(), days=30, now=NOW, step=0)
    assert cutoff(1, NOW) == "2026-12-09T12:00:00.000Z"


# a failing tenant ----------------------------------------------------------------------


def faulting_store(table_harness: TableHarness, fault_proxy: FaultProxy,
                   broken: str) -> TableStore:
    """A second store on the harness's table through the proxy, where every query of
    ``broken``'s partition answers 503."""
    fault_proxy.rule = lambda method, target, number: (
        Fault.busy() if f"PartitionKey eq '{broken}'" in target else None)
    return table_harness.another_store(connection_string=fault_proxy.connection_string)


def several_tenants(store: Store, now: datetime = NOW) -> None:
    for tenant in ("alpha", "broken", "zulu"):
        register(store, tenant)
    for tenant in ("default", "alpha", "broken", "zulu"):
        write_events(store, tenant, [40, 40, 40, 1], now=now)


def test_a_failing_tenant_is_logged_and_does_not_stop_the_others(
        table_harness: TableHarness, fault_proxy: FaultProxy,
        caplog: pytest.LogCaptureFixture) -> None:
    """Storage failing for one tenant is logged (no key in it); every other tenant is trimmed."""
    several_tenants(table_harness.store)
    store = faulting_store(table_harness, fault_proxy, "broken")
    with caplog.at_level(logging.INFO):
        report = trim_feeds(store, days=30, now=NOW)
    assert report.failed == ("broken",)
    assert report.counts == {"default": 3, "alpha": 3, "broken": 0, "zulu": 3}
    assert kept(table_harness.store, "broken") == [1, 2, 3, 4]
    assert kept(table_harness.store, "zulu") == [4]
    failures = [r for r in caplog.records if "retention failed" in r.getMessage()]
    assert len(failures) == 1 and "broken" in failures[0].getMessage()
    assert ACCOUNT_KEY not in caplog.text


# the timer function --------------------------------------------------------------------


def registered_functions() -> list[Any]:
    """The functions of function_app as the host indexes them (azure-functions 1.26 indexes
    an app once; reset as the dev host does)."""
    app = function_app.app
    app.functions_bindings = None
    try:
        return list(app.get_functions())
    finally:
        app.functions_bindings = None


def retention_function() -> Any:
    found = [f for f in registered_functions() if f.get_function_name() == "events_retention"]
    assert len(found) == 1
    return found[0]


def test_the_timer_function_is_registered_with_the_daily_schedule() -> None:
    """function_app registers events_retention as a monitored timer on the daily schedule."""
    binding = retention_function().get_trigger().get_dict_repr()
    assert binding["type"] == "timerTrigger"
    assert binding["name"] == "timer"
    assert binding["schedule"] == function_app.RETENTION_SCHEDULE == "0 17 3 * * *"
    assert binding["runOnStartup"] is False and binding["useMonitor"] is True


def test_the_schedule_comes_from_the_app_setting() -> None:
    """SCIM_EVENTS_RETENTION_SCHEDULE sets the registered schedule; a malformed one is not used."""
    script = ("import function_app as f; f.app.functions_bindings = None; "
              "print([g.get_trigger().get_dict_repr()['schedule'] for g in f.app.get_functions()"
              " if g.get_function_name() == 'events_retention'][0])")
    env = {**os.environ, "SCIM_EVENTS_RETENTION_SCHEDULE": " 0 0 */6 * * * "}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "0 0 */6 * * *"
    assert function_app.retention_schedule({"SCIM_EVENTS_RETENTION_SCHEDULE": "daily"}) == (
        function_app.RETENTION_SCHEDULE)
    assert function_app.retention_schedule({}) == function_app.RETENTION_SCHEDULE


def test_the_run_budget_stays_inside_the_host_timeout(tmp_path: Path) -> None:
    """A timer run's budget is 3/4 of host.json's functionTimeout, else the default."""
    host = json.loads((REPO / "host.json").read_text())
    hours, minutes, seconds = (int(p) for p in host["functionTimeout"].split(":"))
    limit = hours * 3600 + minutes * 60 + seconds
    assert function_app.retention_budget() == 0.75 * limit
    (tmp_path / "host.json").write_text(json.dumps({"functionTimeout": "00:10:00"}))
    assert function_app.retention_budget(tmp_path) == 450
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    assert function_app.retention_budget(tmp_path) == DEFAULT_BUDGET_SECONDS


def test_calling_the_timer_function_trims_every_tenant(any_store: Store) -> None:
    """Invoked with a real TimerRequest, the function trims the app's store by its setting."""
    now = datetime.now(UTC)
    register(any_store, "acme")
    write_events(any_store, "default", [12, 8, 1], now=now)
    write_events(any_store, "acme", [9, 1], now=now)
    use_api(make_api(any_store, events_retention_days=7))
    timer: func.TimerRequest = TimerRequest(past_due=True)
    retention_function().get_user_function()(timer)
    assert kept(any_store, "default") == [3]
    assert kept(any_store, "acme") == [2]


def test_a_timer_run_with_a_failing_tenant_fails_after_trimming_the_rest(
        table_harness: TableHarness, fault_proxy: FaultProxy) -> None:
    """The timer run raises RetentionFailed naming the failing tenant, the others trimmed."""
    several_tenants(table_harness.store, datetime.now(UTC))
    use_api(make_api(faulting_store(table_harness, fault_proxy, "broken")))
    with pytest.raises(function_app.RetentionFailed, match=r"1 tenant.*broken") as failed:
        retention_function().get_user_function()(TimerRequest())
    report: RetentionReport = failed.value.report
    assert report.counts == {"default": 3, "alpha": 3, "broken": 0, "zulu": 3}


# the admin command ---------------------------------------------------------------------


def run_admin(store: Store, *args: str, env: dict[str, str] | None = None
              ) -> tuple[int, list[str], str]:
    out = io.StringIO()
    err = io.StringIO()
    saved, sys.stderr = sys.stderr, err
    try:
        code = admin.main(list(args), store=store, out=out, env=env or {}, root=EMPTY)
    finally:
        sys.stderr = saved
    target, _, rest = err.getvalue().partition("\n")  # every command first names its target
    assert target.startswith("target: "), target
    return code, out.getvalue().splitlines(), rest


def test_admin_events_trim_prints_one_line_per_tenant(any_store: Store) -> None:
    """`events trim` trims every tenant by SCIM_EVENTS_RETENTION_DAYS and prints a line each."""
    now = datetime.now(UTC)
    register(any_store, "acme")
    write_events(any_store, "default", [50, 20, 1], now=now)
    write_events(any_store, "acme", [50, 50, 1], now=now)
    code, lines, err = run_admin(any_store, "events", "trim",
                                 env={"SCIM_EVENTS_RETENTION_DAYS": "30"})
    assert code == 0, err
    assert len(lines) == 2
    assert lines[0].startswith("default: removed 1 events older than ")
    assert lines[0].endswith(" in 1 step")
    assert lines[1].startswith("acme: removed 2 events older than ")
    assert kept(any_store, "default") == [2, 3]
    code, lines, err = run_admin(any_store, "events", "trim", "--days", "10")
    assert code == 0, err
    assert lines[0].startswith("default: removed 1 events") and kept(any_store, "default") == [3]


def test_admin_events_trim_of_one_tenant_with_a_step(any_store: Store) -> None:
    """`events trim --tenant ID --step N` trims only that tenant, N events per step."""
    register(any_store, "acme")
    now = datetime.now(UTC)
    write_events(any_store, "default", [50] * 3, now=now)
    write_events(any_store, "acme", [50] * 5, now=now)
    code, lines, err = run_admin(any_store, "events", "trim", "--tenant", "acme",
                                 "--step", "2")
    assert code == 0, err
    assert len(lines) == 1 and lines[0].startswith("acme: removed 5 events")
    assert lines[0].endswith(" in 3 steps")
    assert kept(any_store, "default") == [1, 2, 3] and kept(any_store, "acme") == []


def test_admin_events_commands_refuse_unknown_and_deleting_tenants(any_store: Store) -> None:
    """An unregistered or deleting tenant is refused with exit 1 and one line on stderr."""
    register(any_store, "gone", DELETING)
    for tenant in ("nobody", "gone"):
        for command in ("trim", "show"):
            code, lines, err = run_admin(any_store, "events", command, "--tenant", tenant)
            assert code == 1 and lines == []
            assert err.startswith("error: ") and err.count("\n") == 1 and tenant in err


def test_admin_events_trim_exits_1_when_a_tenant_fails(
        table_harness: TableHarness, fault_proxy: FaultProxy) -> None:
    """`events trim` reports the failing tenant, trims the others and exits 1."""
    several_tenants(table_harness.store, datetime.now(UTC))
    store = faulting_store(table_harness, fault_proxy, "broken")
    code, lines, _ = run_admin(store, "events", "trim")
    assert code == 1
    assert lines[0].startswith("default: removed 3 events")
    assert lines[1].startswith("alpha: removed 3 events")
    assert lines[2].startswith("broken: failed after removing 0 events in 1 step (")
    assert lines[3].startswith("zulu: removed 3 events")
    assert "run the command again" in lines[-1]
    assert ACCOUNT_KEY not in "\n".join(lines)


def test_admin_events_show_prints_json_lines(any_store: Store) -> None:
    """`events show` prints events after --after as JSON lines, up to --limit."""
    use_api(make_api(any_store))
    client = FunctionClient()
    user = client.create_user("shown@x.test", displayName="Shown")
    client.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "active",
                                              "value": False})
    client.create_user("second@x.test")
    code, lines, err = run_admin(any_store, "events", "show", "--after", "1", "--limit", "1")
    assert code == 0, err
    assert len(lines) == 1
    shown = json.loads(lines[0])
    assert shown["id"] == "default:2" and shown["position"] == 2
    assert shown["type"] == "user.deactivated" and shown["resourceId"] == user["id"]
    assert shown["resource"]["userName"] == "shown@x.test"
    assert set(shown) == {"id", "tenant", "position", "type", "time", "resourceType",
                          "resourceId", "version", "attributes", "members", "resource"}
    code, lines, _ = run_admin(any_store, "events", "show")
    assert [json.loads(line)["position"] for line in lines] == [1, 2, 3]


def test_admin_events_show_behind_the_floor_says_so(any_store: Store) -> None:
    """`events show --after N` behind the retention floor exits 1 and says events are gone."""
    write_events(any_store, "default", [50, 50, 1], now=datetime.now(UTC))
    assert run_admin(any_store, "events", "trim")[0] == 0
    code, lines, err = run_admin(any_store, "events", "show", "--after", "1")
    assert code == 1 and lines == []
    assert "removed by retention" in err
    code, lines, _ = run_admin(any_store, "events", "show", "--after", "2")
    assert code == 0 and [json.loads(line)["position"] for line in lines] == [3]


# a concurrency hazard in the lead's store (reported, not fixed here) ---------------------


class HookedTableClient(TableClient):
    """The real client; ``before_submit[n]`` runs just before its n-th transaction."""

    before_submit: dict[int, Callable[[], None]]
    submitted: int

    def submit_transaction(self, operations: Any, **kwargs: Any) -> Any:
        hook = self.before_submit.pop(self.submitted, None)
        self.submitted += 1
        if hook is not None:
            hook()
        return super().submit_transaction(operations, **kwargs)


@pytest.fixture
def hooked_store(table_harness: TableHarness) -> Iterator[tuple[TableStore, HookedTableClient]]:
    client = HookedTableClient.from_connection_string(
        table_harness.azurite.connection_string, table_name=table_harness.client.table_name,
        **FAST_CLIENT_OPTIONS)
    assert isinstance(client, HookedTableClient)
    client.before_submit, client.submitted = {}, 0
    store = TableStore(client)
    try:
        yield store, client
    finally:
        store.close()


def test_two_overlapping_trims_never_lower_the_floor(
        table_harness: TableHarness, hooked_store: tuple[TableStore, HookedTableClient]
        ) -> None:
    """Two trims overlapping (the timer and an admin run) leave a floor at the highest
    position removed, so a reader behind it gets CursorExpired; each counts what it removed."""
    write_events(table_harness.store, "default", [40] * 300)
    slow, client = hooked_store
    other = table_harness.store.tenant("default")
    # the slow trim read events 1-150; before its second transaction (100-150) lands,
    # another trim removes 100-300

    def overtake() -> None:
        assert other.trim(before=stamp(NOW), limit=1000) == 201

    client.before_submit[1] = overtake
    assert slow.tenant("default").trim(before=stamp(NOW), limit=150) == 99  # the rest had gone
    write_events(table_harness.store, "default", [0])
    with pytest.raises(CursorExpired):
        other.events(after=150, limit=10)
