"""The activity log on both stores: what each kind of request records, redaction,
isolation between tenants, loss accounting, paging, aggregates, health and retention."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from scim_core import Request, ScimApi, Settings, build_api
from scim_core.activity import (
    ActivityLog,
    ActivityRecorder,
    ActivityRows,
    BadQuery,
    MemoryActivityRows,
    trim_activity,
)
from scim_core.activity.tables import TableActivityRows
from scim_core.activity.views import activity_view, health_view
from scim_core.app import activity_endpoints, build_admin
from scim_core.auth import StaticTokenSource
from scim_core.schema import Registry
from scim_core.store import MemoryStore, Store
from tests.azurite import (
    FAST_CLIENT_OPTIONS,
    Azurite,
    Fault,
    FaultProxy,
    RequestLog,
    unique_table_name,
)
from tests.support import TOKEN

BASE = "http://127.0.0.1/scim/v2"
PASSWORD = "Hunter2-very-secret-password"
ENDPOINTS = activity_endpoints(Registry.default())


@dataclass
class Rig:
    """An API over ``store`` whose recorder writes to ``rows``; ``raw`` reads every row."""

    api: ScimApi
    recorder: ActivityRecorder
    rows: ActivityRows
    log: ActivityLog
    store: Store
    calls: RequestLog | None

    def send(self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
             tenant: str | None = None, query: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> int:
        sent = {**({"Authorization": f"Bearer {token}"} if token else {}),
                "Content-Type": "application/scim+json", **(headers or {})}
        raw = json.dumps(body).encode() if body is not None else b""
        return self.api.handle(Request(method, path, BASE, query or {}, sent, raw,
                                       tenant=tenant)).status

    def flush(self) -> None:
        assert self.recorder.flush(20.0)

    def raw(self) -> list[dict[str, Any]]:
        if isinstance(self.rows, MemoryActivityRows):
            return self.rows.all_rows()
        assert isinstance(self.rows, TableActivityRows)
        try:
            return [dict(e) for e in self.rows.client.list_entities()]
        except ResourceNotFoundError:
            return []  # the table is made on the first write


def _rig(store: Store, rows: ActivityRows, calls: RequestLog | None = None,
         **options: Any) -> Rig:
    recorder = ActivityRecorder(rows, endpoints=ENDPOINTS, **options)
    api = build_api(Settings(store="memory", bearer_token=TOKEN), store=store,
                    tokens=StaticTokenSource(TOKEN), recorder=recorder)
    return Rig(api, recorder, rows, ActivityLog(rows), store, calls)


@pytest.fixture(params=["memory", "tables"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """Each store with its own activity rows: memory, and Azurite (a table of its own)."""
    if request.param == "memory":
        yield _rig(MemoryStore(), MemoryActivityRows())
        return
    azurite: Azurite = request.getfixturevalue("azurite")
    store = request.getfixturevalue("table_store")
    calls = RequestLog()
    client = TableClient.from_connection_string(
        azurite.connection_string, table_name=unique_table_name() + "activity",
        raw_response_hook=calls, **FAST_CLIENT_OPTIONS)
    try:
        yield _rig(store, TableActivityRows(client), calls)
    finally:
        client.delete_table()
        client.close()


def user(name: str, external: str = "ext-1", **extra: Any) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
            "externalId": external, **extra}


def test_a_success_records_route_names_client_and_no_body(rig: Rig) -> None:
    """A match GET and a create are recorded with route, names, user agent, request id."""
    headers = {"User-Agent": "Azure AD SCIM", "client-request-id": "req-42"}
    assert rig.send("GET", "/Users", query={"filter": 'userName eq "Alice@Contoso.com"'},
                    headers=headers) == 200
    assert rig.send("POST", "/Users", user("alice@contoso.com", password=PASSWORD),
                    headers=headers) == 201
    rig.flush()
    created, matched = rig.log.search("default", name="ALICE@contoso.com").entries
    assert (matched.operation, matched.status, matched.user_name) == (
        "GET /Users", 200, "Alice@Contoso.com")
    assert (created.operation, created.status, created.outcome) == ("POST /Users", 201, "ok")
    assert created.external_id == "ext-1" and created.resource_id
    assert (created.user_agent, created.request_id) == ("Azure AD SCIM", "req-42")
    assert created.body is None
    by_id = rig.log.search("default", name=created.resource_id).entries
    assert [e.id for e in by_id] == [created.id]


def test_a_scim_error_records_its_type_detail_and_redacted_body(rig: Rig) -> None:
    """A 409 keeps scimType, detail and the body with the password redacted."""
    assert rig.send("POST", "/Users", user("bob@contoso.com")) == 201
    assert rig.send("POST", "/Users", user("bob@contoso.com", password=PASSWORD)) == 409
    rig.flush()
    failed = rig.log.search("default", name="bob@contoso.com", status="4xx").entries
    assert len(failed) == 1
    entry = failed[0]
    assert (entry.outcome, entry.scim_type) == ("scim_error", "uniqueness")
    assert entry.detail and "bob@contoso.com" in entry.detail
    assert entry.body is not None and '"password":"[redacted]"' in entry.body
    assert PASSWORD not in json.dumps(rig.raw(), default=str)


def test_bodies_can_be_turned_off(rig: Rig) -> None:
    """With bodies off a failure keeps its status and detail but no body."""
    quiet = _rig(rig.store, rig.rows, bodies=False)
    assert quiet.send("POST", "/Users", {"schemas": ["x"], "userName": 7}) == 400
    quiet.flush()
    (entry,) = quiet.log.search("default", status="4xx").entries
    assert entry.body is None and entry.detail


def test_a_wrong_token_is_an_auth_failure_without_anything_it_sent(rig: Rig) -> None:
    """A known tenant with a wrong token: auth failure entry and health, nothing it sent."""
    wrong = "wrong-token-abcdefghijklmnopqrstuvwxyz012345"
    assert rig.send("POST", "/Users", user("eve@contoso.com", password=PASSWORD), token=wrong,
                    headers={"User-Agent": "probe-agent", "client-request-id": "r-9"}) == 401
    rig.flush()
    (entry,) = rig.log.search("default", status="auth").entries
    assert (entry.outcome, entry.status, entry.route) == ("auth_failure", 401, "/Users")
    assert entry.user_name is None and entry.body is None and entry.user_agent is None
    assert entry.request_id is None
    dump = json.dumps(rig.raw(), default=str)
    for sent in (wrong, PASSWORD, "eve@contoso.com", "probe-agent", "r-9"):
        assert sent not in dump
    health = rig.log.health("default")
    assert health["lastAuthFailureReason"] == "the bearer token is not one of this tenant's"
    assert "lastSuccess" not in health


def test_requests_without_a_well_formed_bearer_cost_no_activity_storage(rig: Rig) -> None:
    """No bearer, a malformed one, or an unknown tenant: only a per-process counter."""
    assert rig.send("GET", "/Users", token=None) == 401
    assert rig.send("GET", "/Users", headers={"Authorization": "Basic abc"}, token=None) == 401
    assert rig.send("GET", "/Users", tenant="nosuchtenant") == 401
    rig.flush()
    assert rig.recorder.counters.unrecorded_refusals == 3
    assert rig.recorder.counters.recorded == 0
    assert rig.calls is None or rig.calls.entries == []
    assert rig.raw() == []


def test_no_token_or_password_in_a_body_reaches_a_row(rig: Rig) -> None:
    """Passwords, token-like attributes, PATCH password values and the bearer are redacted."""
    assert rig.send("POST", "/Users", user("carol@contoso.com")) == 201
    rig.flush()
    (created,) = rig.log.search("default").entries
    assert created.resource_id
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "replace", "path": "password", "value": PASSWORD},
                            {"op": "bogus", "path": "displayName", "value": TOKEN}]}
    assert rig.send("PATCH", f"/Users/{created.resource_id}", patch) == 400
    assert rig.send("POST", "/Users", user("carol@contoso.com", apiToken="tok-secret-1",
                                           nickName=f"Bearer {TOKEN}")) == 409
    rig.flush()
    failures = rig.log.search("default", status="4xx").entries
    assert len(failures) == 2 and all(e.body for e in failures)
    dump = json.dumps(rig.raw(), default=str)
    for secret in (PASSWORD, TOKEN, "tok-secret-1"):
        assert secret not in dump


def test_a_tenants_log_never_shows_another_tenants_requests(rig: Rig) -> None:
    """Two tenants: each search, name search and health sees its own requests only."""
    with build_admin(Settings(store="memory"), store=rig.store) as admin:
        other, other_token = admin.create("Fabrikam", tenant_id="fabrikam")
    assert rig.send("POST", "/Users", user("dave@fabrikam.com"), token=other_token,
                    tenant=other.id) == 201
    assert rig.send("POST", "/Users", user("dave@contoso.com")) == 201
    rig.flush()
    mine = rig.log.search("default").entries
    theirs = rig.log.search(other.id).entries
    assert [e.user_name for e in mine] == ["dave@contoso.com"]
    assert [e.user_name for e in theirs] == ["dave@fabrikam.com"]
    assert rig.log.search("default", name="dave@fabrikam.com").entries == []
    assert rig.log.health(other.id)["seen"] and rig.log.health("default")["seen"]


def test_cursor_paging_returns_every_entry_once_newest_first(rig: Rig) -> None:
    """Seven requests in pages of three: 3, 3, 1, newest first, no repeats."""
    for i in range(7):
        assert rig.send("GET", "/Users", query={"filter": f'userName eq "u{i}@x.com"'}) == 200
    rig.flush()
    seen: list[str] = []
    cursor = None
    sizes = []
    while True:
        page = rig.log.search("default", limit=3, cursor=cursor)
        sizes.append(len(page.entries))
        seen += [e.user_name or "" for e in page.entries]
        cursor = page.cursor
        if cursor is None:
            break
    assert sizes[:3] == [3, 3, 1]
    assert seen == [f"u{i}@x.com" for i in reversed(range(7))]
    with pytest.raises(BadQuery):
        rig.log.search("default", cursor="not-a-cursor")


def test_minute_aggregates_count_by_operation_and_merge_across_processes(rig: Rig) -> None:
    """Two recorders (two processes) writing one minute merge into one row per operation."""
    second = _rig(rig.store, rig.rows)
    assert rig.send("POST", "/Users", user("f1@x.com", "e1")) == 201
    assert rig.send("POST", "/Users", user("f1@x.com", "e1")) == 409
    assert second.send("POST", "/Users", user("f2@x.com", "e2")) == 201
    rig.flush()
    second.flush()
    minutes = [m for m in rig.log.minutes("default") if m["operation"] == "POST /Users"]
    assert sum(m["requests"] for m in minutes) == 3
    assert sum(m["2xx"] for m in minutes) == 2 and sum(m["4xx"] for m in minutes) == 1
    assert all(m["p95Ms"] is not None for m in minutes)
    assert len({m["minute"] for m in minutes}) == len(minutes)


def test_a_storage_outage_of_the_data_is_recorded_as_a_server_error(
        azurite: Azurite, fault_proxy: FaultProxy) -> None:
    """With the data table failing, the SCIM answer is 503 and its entry says so."""
    from scim_core.store.tables import TableStore

    client = TableClient.from_connection_string(
        fault_proxy.connection_string, table_name=unique_table_name(), **FAST_CLIENT_OPTIONS)
    client.create_table()
    rows = MemoryActivityRows()
    broken = _rig(TableStore(client), rows)
    assert broken.send("GET", "/Users") == 200  # the tenant is looked up and cached
    fault_proxy.rule = lambda method, target, number: Fault.busy(None)
    status = broken.send("POST", "/Users", user("gina@contoso.com"))
    fault_proxy.rule = lambda method, target, number: None
    client.delete_table()
    assert status == 503
    broken.flush()
    (entry,) = broken.log.search("default", name="gina@contoso.com").entries
    assert broken.recorder.counters.recorded == 2
    assert (entry.status, entry.outcome) == (503, "server_error")
    assert entry.body is not None and "gina@contoso.com" in entry.body


def test_an_activity_storage_outage_drops_counted_entries_and_never_fails_requests(
        azurite: Azurite, fault_proxy: FaultProxy) -> None:
    """Activity rows failing: requests still succeed; drops are counted; writes resume."""
    client = TableClient.from_connection_string(
        fault_proxy.connection_string, table_name=unique_table_name() + "activity",
        **FAST_CLIENT_OPTIONS)
    rig = _rig(MemoryStore(), TableActivityRows(client))
    fault_proxy.rule = lambda method, target, number: Fault.busy(None)
    for i in range(5):
        assert rig.send("POST", "/Users", user(f"h{i}@x.com", f"h{i}")) == 201
    rig.flush()
    assert rig.recorder.counters.dropped_storage == 5
    assert rig.recorder.counters.written == 0
    fault_proxy.rule = lambda method, target, number: None
    assert rig.send("POST", "/Users", user("h9@x.com", "h9")) == 201
    rig.flush()
    assert rig.recorder.counters.written == 1
    assert [e.user_name for e in rig.log.search("default").entries] == ["h9@x.com"]
    client.delete_table()


def test_a_memory_rows_outage_is_counted_the_same_way() -> None:
    """The memory rows failing: requests succeed, drops counted, nothing stored."""
    rows = MemoryActivityRows()
    rig = _rig(MemoryStore(), rows)
    rows.failing = True
    assert rig.send("POST", "/Users", user("i@x.com")) == 201
    rig.flush()
    rows.failing = False
    assert rig.recorder.counters.dropped_storage == 1 and rows.all_rows() == []


def test_a_full_buffer_drops_and_counts_and_stays_at_its_cap() -> None:
    """Capacity 5 with the writer asleep: 5 held, 15 dropped and counted."""
    rig = _rig(MemoryStore(), MemoryActivityRows(), capacity=5, interval=3600.0,
               wake_at=10_000)
    for i in range(20):
        assert rig.send("GET", "/Users", query={"filter": f'userName eq "b{i}"'}) == 200
    assert rig.recorder.buffered == 5
    assert rig.recorder.counters.dropped_full == 15
    rig.flush()
    assert len(rig.log.search("default").entries) == 5


def test_the_writer_threads_cpu_is_counted() -> None:
    """The writer's CPU time grows with what it writes; recording alone adds none."""
    rig = _rig(MemoryStore(), MemoryActivityRows(), interval=3600.0, wake_at=10_000)
    for i in range(50):
        assert rig.send("POST", "/Users", user(f"cpu{i}@x.com", f"cpu{i}")) == 201
    assert rig.recorder.counters.writer_cpu_s == 0.0
    rig.flush()
    assert rig.recorder.counters.writer_cpu_s > 0.0


def test_the_memory_rows_keep_the_newest_entries_up_to_their_cap() -> None:
    """A memory log capped at 30 rows per tenant-day keeps the newest entries and their name
    rows, stays within a tenth over its cap, and still finds them by name."""
    rows = MemoryActivityRows(entry_rows=30)
    rig = _rig(MemoryStore(), rows)
    for i in range(40):
        assert rig.send("GET", "/Users", query={"filter": f'userName eq "cap{i}@x.com"'}) == 200
        rig.flush()
    entries = [r for r in rows.all_rows() if "|e" in r["PartitionKey"]]
    assert 30 <= len(entries) <= 33
    found = rig.log.search("default", limit=100).entries
    assert found[0].user_name == "cap39@x.com" and len(found) >= 15
    assert [e.user_name for e in rig.log.search("default", name="cap39@x.com").entries] \
        == ["cap39@x.com"]
    assert rig.log.search("default", name="cap0@x.com").entries == []


def test_retention_removes_old_entries_and_keeps_aggregates_longer(rig: Rig) -> None:
    """Entries older than 14 days go; minute rows live until 90 days; recent ones stay."""
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC).timestamp()
    for age_days in (100, 30, 1):
        old = _rig(rig.store, rig.rows, clock=lambda a=age_days: now - a * 86400.0)
        assert old.send("GET", "/Users", query={"filter": f'userName eq "r{age_days}"'}) == 200
        old.flush()
    log = ActivityLog(rig.rows, days=200, clock=lambda: now)
    assert len(log.search("default").entries) == 3
    trimmed = trim_activity(rig.rows, ["default"], days=14, minute_days=90,
                            now=datetime.fromtimestamp(now, UTC), step=2)
    assert trimmed.complete and trimmed.removed["default"] > 0
    assert [e.user_name for e in log.search("default").entries] == ["r1"]
    minutes = log.minutes("default", since=now - 200 * 86400.0, until=now)
    assert len(minutes) == 2  # 30 and 1 days old; the 100-day-old minute is gone


def test_the_views_answer_json_and_refuse_bad_queries(rig: Rig) -> None:
    """activity_view pages with nextCursor; health_view has health and minutes."""
    for i in range(3):
        rig.send("GET", "/Users", query={"filter": f'userName eq "v{i}"'})
    rig.flush()
    page = activity_view(rig.log, "default", {"limit": "2"})
    assert len(page["entries"]) == 2 and page["nextCursor"]
    assert page["entries"][0]["operation"] == "GET /Users"
    rest = activity_view(rig.log, "default", {"limit": "2", "cursor": page["nextCursor"]})
    assert len(rest["entries"]) == 1 and "nextCursor" not in rest
    health = health_view(rig.log, "default", {})
    assert health["seen"] and health["minutes"][0]["requests"] == 3
    for bad in ({"status": "6xx"}, {"limit": "x"}, {"since": "yesterday"}):
        with pytest.raises(BadQuery):
            activity_view(rig.log, "default", bad)


def test_the_admin_commands_show_activity_and_health() -> None:
    """`activity show --name` prints the failed request and why; `health` prints JSON."""
    from scim_core.admin import main

    store = MemoryStore()
    settings = Settings(store="memory", bearer_token=TOKEN)
    api = build_api(settings, store=store, tokens=StaticTokenSource(TOKEN))
    for _ in range(2):
        api.handle(Request("POST", "/Users", BASE, {}, {"Authorization": f"Bearer {TOKEN}"},
                           json.dumps(user("zoe@contoso.com")).encode()))
    assert isinstance(api.recorder, ActivityRecorder) and api.recorder.flush(10.0)
    out = io.StringIO()
    env = {"SCIM_STORE": "memory"}
    assert main(["activity", "show", "--name", "Zoe@Contoso.com"], out=out, env=env,
                store=store) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["status"] for line in lines] == [409, 201]
    assert lines[0]["scimType"] == "uniqueness"
    out = io.StringIO()
    assert main(["health"], out=out, env=env, store=store) == 0
    health = json.loads(out.getvalue())
    assert health["seen"] is True and isinstance(health["tokenVersions"], list)


def test_a_disabled_tenant_is_recorded_as_an_auth_failure(rig: Rig) -> None:
    """Its own token on a disabled tenant: 403, recorded with the reason, nothing sent."""
    with build_admin(Settings(store="memory"), store=rig.store) as admin:
        tenant, token = admin.create("Northwind", tenant_id="northwind")
        admin.disable(tenant.id)
    assert rig.send("POST", "/Users", user("kim@northwind.com", password=PASSWORD),
                    token=token, tenant=tenant.id) == 403
    rig.flush()
    (entry,) = rig.log.search(tenant.id).entries
    assert (entry.outcome, entry.status) == ("auth_failure", 403)
    assert entry.detail == "provisioning is disabled for this tenant"
    assert entry.user_name is None and PASSWORD not in json.dumps(rig.raw(), default=str)


def test_the_recorder_call_takes_no_storage_call_on_the_request_thread() -> None:
    """record() only appends: with the writer asleep, no row exists after the request."""
    rows = MemoryActivityRows()
    rig = _rig(MemoryStore(), rows, interval=3600.0, wake_at=10_000)
    started = time.perf_counter()
    assert rig.send("POST", "/Users", user("j@x.com")) == 201
    assert time.perf_counter() - started < 5
    assert rows.all_rows() == [] and rig.recorder.buffered == 1



def test_a_partial_batch_waits_for_more_rows_until_flushed() -> None:
    """Fewer than 100 rows of a partition stay pending (one batch later, not three now)."""
    rows = MemoryActivityRows()
    rig = _rig(MemoryStore(), rows, interval=0.01, wake_at=1, max_wait=3600.0)
    for i in range(3):
        assert rig.send("GET", "/Users", query={"filter": f'userName eq "w{i}"'}) == 200
    deadline = time.monotonic() + 10
    while rig.recorder.buffered and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert rig.recorder.counters.batches == 0
    assert not any(r["RowKey"].startswith("e|") for r in rows.all_rows())
    rig.flush()
    assert rig.recorder.counters.batches == 1 and rig.recorder.counters.written == 3


def test_a_management_call_naming_the_tenant_is_recorded_under_its_route(rig: Rig) -> None:
    """record(..., route=...) from the management API: its own route, names, no token."""
    from scim_core.http import Response

    body = json.dumps({"userName": "lee@contoso.com", "token": "mgmt-secret-1"}).encode()
    asked = Request("POST", "/manage/v1/tenants/default/users", BASE, {},
                    {"Authorization": "Bearer mgmt-key-secret"}, body)
    rig.recorder.record(asked, Response.json(400, {"detail": "no"}), "default", None, 0.002,
                        route="/manage/v1/tenants/{id}/users")
    rig.flush()
    (entry,) = rig.log.search("default", name="lee@contoso.com").entries
    assert (entry.route, entry.status, entry.detail) == (
        "/manage/v1/tenants/{id}/users", 400, "no")
    dump = json.dumps(rig.raw(), default=str)
    assert "mgmt-secret-1" not in dump and "mgmt-key-secret" not in dump


def test_the_settings_turn_the_log_and_bodies_on_and_off() -> None:
    """On by default; SCIM_ACTIVITY=false builds a recorder that records nothing."""
    from scim_core.activity import NullRecorder

    default = Settings.from_env({})
    assert (default.activity, default.activity_bodies, default.activity_retention_days,
            default.activity_minutes_retention_days) == (True, True, 14, 90)
    off = Settings.from_env({"SCIM_ACTIVITY": "false", "SCIM_ACTIVITY_BODIES": "false",
                             "SCIM_ACTIVITY_RETENTION_DAYS": "7"})
    assert (off.activity, off.activity_bodies, off.activity_retention_days) == (False, False, 7)
    api = build_api(dataclasses.replace(off, store="memory", bearer_token=TOKEN),
                    store=MemoryStore(), tokens=StaticTokenSource(TOKEN))
    assert isinstance(api.recorder, NullRecorder)


def test_on_table_storage_the_log_has_its_own_table_apart_from_the_data(
        azurite: Azurite, table_harness: Any) -> None:
    """build_api over a TableStore writes the log to <table>activity, none to the data table."""
    name = table_harness.client.table_name
    settings = Settings(store="tables", tables_connection=azurite.connection_string,
                        table_name=name, bearer_token=TOKEN)
    api = build_api(settings, store=table_harness.store, tokens=StaticTokenSource(TOKEN))
    recorder = api.recorder
    assert isinstance(recorder, ActivityRecorder)
    assert isinstance(recorder.rows, TableActivityRows)
    assert recorder.rows.client.table_name == name + "activity"
    body = json.dumps(user("mo@contoso.com")).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
    assert api.handle(Request("POST", "/Users", BASE, {}, headers, body)).status == 201
    assert recorder.flush(20.0)
    try:
        rows = list(recorder.rows.client.list_entities())
        assert any(r["RowKey"].startswith("e|") for r in rows)
        data = list(table_harness.client.list_entities())
        assert data and not any("|e" in r["PartitionKey"] for r in data)
    finally:
        recorder.rows.client.delete_table()
