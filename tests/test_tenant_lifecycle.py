"""Tenant lifecycle (issue 21, items 1-3): a delete is final whatever a process has cached,
a re-created id is a new tenant (no old row, token, paging cursor or feed cursor works on
it), and state changes are conditional on the registry row, on both stores; and a race of
writers on a dev host with 4 worker processes against ``tenant delete``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient

from scim_core import Settings, build_api
from scim_core.app import build_admin
from scim_core.auth.source import TokenSource
from scim_core.auth.tenant_tokens import TenantTokens
from scim_core.events import drafts
from scim_core.events.model import EventType
from scim_core.operations.tenants import TenantAdmin, TenantAdminError
from scim_core.store import USER, IndexKey, MemoryStore, Meta, Record, Store, TenantGone
from scim_core.store.errors import BadCursor, CursorExpired
from scim_core.store.tables import TableStore, keys
from scim_core.store.tables.sdk_batches import install_batch_codec
from scim_core.tenants import DISABLED, ENABLED, Tenant
from scim_core.tenants.model import DELETING
from scim_reader.errors import CursorExpired as ReaderCursorExpired
from scim_reader.events import Feed
from tests.azurite import FAST_CLIENT_OPTIONS, Azurite, TableHarness, free_port, unique_table_name
from tests.support import FunctionClient, HttpClient, Result, use_api

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"

pytestmark = pytest.mark.timeout(240)


@dataclass
class Stores:
    """The store the admin acts on, and the one the serving app reads (on Table Storage,
    another store on the same table: another process, with its own caches)."""

    admin: Store
    app: Store


@pytest.fixture(params=["memory", "tables"])
def stores(request: pytest.FixtureRequest) -> Stores:
    """Each store in turn; on Table Storage the app is a second store on the same table."""
    if request.param == "memory":
        memory = MemoryStore()
        return Stores(memory, memory)
    harness: TableHarness = request.getfixturevalue("table_harness")
    return Stores(harness.store, harness.another_store())


def admin_of(store: Store, **options: Any) -> TenantAdmin:
    return build_admin(Settings(store="memory"), store=store, **options)


def app_of(store: Store) -> Any:
    """A freshly started app over ``store`` (tenants cached 60 s, tokens from the store's
    local secrets)."""
    return build_api(Settings(store="memory"), store=store)


def left_rows(store: Store, tenant_id: str) -> list[tuple[str, Any]]:
    """What the tenant's partition holds: (RowKey, tenantState) of every raw row, or, in
    memory, its resources plus the feed's state."""
    if isinstance(store, TableStore):
        return [(str(e["RowKey"]), e.get("tenantState")) for e in store.table.query_entities(
            "PartitionKey eq @p", parameters={"p": keys.partition_key(tenant_id)})]
    rows = store.tenant(tenant_id)._t  # type: ignore[attr-defined]
    return [*((f"{k}:{i}", None) for k, i in rows.entries), *(
        (f"index:{key}", None) for key in rows.index), *(
        (f"event:{e.position}", None) for e in rows.events), ("feed", rows.tenant_state)]


TOMBSTONE = [("feed", "deleted")]


def user(name: str) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": name}


def record(user_id: str) -> Record:
    meta = Meta("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z", "W/\"1\"")
    return Record(USER, user_id, {"id": user_id, "userName": user_id}, meta)


def unknown_tenant_refusal(token: str) -> Result:
    """What a tenant that never existed answers a well-formed token."""
    return FunctionClient("never-there", token).get("/Users")


# -- 1. delete is final --------------------------------------------------------------------


def test_requests_after_delete_get_401_whatever_the_app_has_cached(stores: Stores) -> None:
    """After delete returns, an app that cached the tenant, its token and its feed head
    (60 s) refuses writes and reads on it with the unknown tenant's 401, and the partition
    holds nothing but the tombstone; another tenant is untouched."""
    admin = admin_of(stores.admin)
    _, token = admin.create("Doomed", tenant_id="doomed")
    _, kept_token = admin.create("Kept", tenant_id="kept")
    app = app_of(stores.app)
    use_api(app)
    client = FunctionClient("doomed", token)
    made = client.create_user("first@example.com")
    group = client.create_group("Everyone", members=[{"value": made["id"]}])
    assert client.get("/Users").status == 200
    assert FunctionClient("kept", kept_token).post("/Users", user("k@example.com")).status == 201

    admin.delete("doomed")

    assert left_rows(stores.admin, "doomed") == TOMBSTONE
    refusal = unknown_tenant_refusal(token)
    answers = [
        client.post("/Users", user("late@example.com")),
        client.patch_ops(f"/Groups/{group['id']}",
                         {"op": "add", "path": "members", "value": [{"value": made["id"]}]}),
        client.get(f"/Users/{made['id']}"),
        client.get("/Users", params={"filter": 'userName eq "first@example.com"'}),
        client.get("/Users"),
        client.get("/Groups"),
        client.delete(f"/Users/{made['id']}"),
    ]
    for answer in answers:
        assert (answer.status, answer.json, answer.header("WWW-Authenticate")) == (
            refusal.status, refusal.json, refusal.header("WWW-Authenticate")), answer.body
    assert left_rows(stores.admin, "doomed") == TOMBSTONE
    assert FunctionClient("kept", kept_token).get("/Users").json["totalResults"] == 1
    # the refusals made the app drop what it had cached of the tenant and its token
    assert app.tenants.get("doomed") is None and len(app.tokens) == 1


def test_a_writer_that_never_saw_the_feed_meets_the_tombstone(
        table_harness: TableHarness) -> None:
    """A process with no cached feed head, writing for the tenant after its delete,
    reads or meets the kept tombstone (a create of the feed row fails) and writes nothing,
    with or without the tenant's epoch."""
    admin = admin_of(table_harness.store)
    tenant, _ = admin.create("Doomed", tenant_id="doomed")
    admin.delete("doomed")
    for epoch in (tenant.epoch, None):
        late = table_harness.another_store().tenant("doomed", epoch)
        with pytest.raises(TenantGone):
            late.create(record(f"late-{epoch}"), [IndexKey("userName", f"late-{epoch}", True)],
                        events=[drafts.tenant_state(EventType.TENANT_ENABLED, "t")])
    assert left_rows(table_harness.store, "doomed") == TOMBSTONE


def test_a_write_racing_the_mark_fails_its_if_match(table_harness: TableHarness) -> None:
    """A process whose cached feed head predates the deleting mark has its write refused
    (its If-Match fails, it reads the row again and sees the mark), even a write that
    emits no event."""
    admin = admin_of(table_harness.store)
    tenant, _ = admin.create("Doomed", tenant_id="doomed")
    other = table_harness.another_store()
    view = other.tenant("doomed", tenant.epoch)
    view.create(record("u1"), [IndexKey("userName", "u1", True)],
                events=[drafts.tenant_state(EventType.TENANT_ENABLED, "t")])
    table_harness.store.tenant("doomed").mark_deleting()
    stored = view.get(USER, "u1")
    assert stored is not None
    with pytest.raises(TenantGone):
        view.update(USER, "u1", meta=stored.meta, expected_etag=stored.etag,
                    document={"id": "u1", "userName": "u1", "displayName": "x"})
    assert view.get(USER, "u1") == stored


# -- 2. a re-created id is a new tenant ------------------------------------------------------


def test_a_recreated_id_starts_empty_and_refuses_everything_of_the_old_tenant(
        stores: Stores) -> None:
    """Deleted and created again, an id starts empty with only its new token: the old
    token (still cached by a running app), an old paging cursor and an old feed cursor are
    refused (401, 400 invalidCursor, CursorExpired), while the new token and a fresh
    cursor work."""
    admin = admin_of(stores.admin)
    old_tenant, old_token = admin.create("First", tenant_id="reused")
    stale = app_of(stores.app)
    use_api(stale)
    old = FunctionClient("reused", old_token)
    for n in range(3):
        old.create_user(f"old{n}@example.com")
    old_cursor = old.get("/Users", params={"count": "1", "cursor": ""}).json["nextCursor"]
    old_position = stores.admin.tenant("reused").position()
    assert old_position > 0

    admin.delete("reused")
    new_tenant, new_token = admin.create("Second", tenant_id="reused")
    assert new_tenant.epoch > old_tenant.epoch and new_token != old_token

    fresh = app_of(stores.app)
    use_api(fresh)
    new = FunctionClient("reused", new_token)
    assert new.get("/Users").json["totalResults"] == 0
    made = new.create_user("new@example.com")
    new.create_user("new2@example.com")

    use_api(stale)  # still caching the first tenant and its token
    refusal = unknown_tenant_refusal(old_token)
    for answer in (old.get("/Users"), old.get(f"/Users/{made['id']}"),
                   old.post("/Users", user("old-again@example.com"))):
        assert (answer.status, answer.json) == (refusal.status, refusal.json)
    use_api(fresh)
    assert old.get("/Users").status == 401
    paged = new.get("/Users", params={"count": "1", "cursor": old_cursor})
    assert (paged.status, paged.json["scimType"]) == (400, "invalidCursor")
    assert new.get("/Users", params={"count": "1", "cursor": ""}).status == 200
    users = new.get("/Users").json
    assert sorted(r["userName"] for r in users["Resources"]) == [
        "new2@example.com", "new@example.com"]

    view = stores.admin.tenant("reused")
    with pytest.raises(CursorExpired):
        view.events(after=old_position, limit=10)
    with pytest.raises(CursorExpired):
        view.events(after=old_position - 1, limit=10)
    now = view.position()
    assert [e.resource_id for e in view.events(after=now - 2, limit=10)] == [
        made["id"], new.get("/Users", params={
            "filter": 'userName eq "new2@example.com"'}).json["Resources"][0]["id"]]
    with pytest.raises(BadCursor):
        stores.app.tenant("reused", new_tenant.epoch).page(
            USER, cursor=old_cursor, size=1)
    if isinstance(stores.admin, TableStore):
        feed = Feed(stores.admin.table, keys.partition_key("reused"))
        with pytest.raises(ReaderCursorExpired):
            feed.page(old_position, 10)
        assert len(feed.page(now - 2, 10).events) == 2


def test_token_sources_are_per_epoch() -> None:
    """A token source cached for a tenant's epoch is never used for a later epoch of the
    same id: the new tenant's source is built afresh."""
    made: list[str] = []

    class Source:
        def accepts(self, presented: str) -> bool:
            return False

    def make(secret: str) -> TokenSource:
        made.append(secret)
        return Source()

    tokens = TenantTokens(Source(), make, default_secret="scim-bearer-token")
    first = tokens.source("acme", 1)
    assert tokens.source("acme", 1) is first
    assert tokens.source("acme", 2) is not first
    assert made == ["scim-token-acme", "scim-token-acme"]


def test_create_refuses_an_id_whose_partition_still_holds_rows(stores: Stores) -> None:
    """create() refuses an id whose partition holds rows other than a tombstone (rows a
    stale process left), and leaves no registry row behind."""
    stores.admin.tenant("orphan").create(record("u1"), [IndexKey("userName", "u1", True)])
    with pytest.raises(TenantAdminError, match="still holds data"):
        admin_of(stores.admin).create("Orphan", tenant_id="orphan")
    assert stores.admin.tenant_registry().get("orphan") is None


# -- 3. conditional state changes -------------------------------------------------------------


class Interposed:
    """A store whose registry runs ``before`` once, just before the first update that
    ``admin`` sends (another process's change landing between its read and its write)."""

    def __init__(self, store: Store, before: Callable[[], object]) -> None:
        self._store = store
        self._before: Callable[[], object] | None = before

    def tenant(self, name: str, epoch: int | None = None) -> Any:
        return self._store.tenant(name, epoch)

    def tenant_registry(self) -> Any:
        inner = self._store.tenant_registry()
        outer = self

        class Registry:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def update(self, tenant: Tenant) -> Tenant:
                if outer._before is not None:
                    before, outer._before = outer._before, None
                    before()
                return inner.update(tenant)

        return Registry()


@pytest.mark.parametrize("change", ["enable", "disable"])
def test_a_state_change_read_before_delete_cannot_undo_deleting(stores: Stores,
                                                                change: str) -> None:
    """An enable or disable that read the tenant before delete marked it deleting fails
    its If-Match, reads again and refuses: the tenant stays deleting."""
    admin = admin_of(stores.admin)
    admin.create("Contested", tenant_id="contested")
    if change == "enable":
        admin.disable("contested")
    other = admin_of(stores.admin)

    def delete_starts() -> None:
        current = other.show("contested")
        stores.admin.tenant_registry().update(current.with_state(DELETING, current.changed))
        stores.admin.tenant("contested").mark_deleting()

    racing = admin_of(Interposed(stores.admin, delete_starts))  # type: ignore[arg-type]
    with pytest.raises(TenantAdminError, match="being deleted"):
        getattr(racing, change)("contested")
    assert admin.show("contested").state == DELETING
    admin.delete("contested")
    assert left_rows(stores.admin, "contested") == TOMBSTONE


def test_a_delete_that_read_before_a_disable_still_marks_deleting(stores: Stores) -> None:
    """A delete whose read was overtaken by a disable retries on the new row and deletes."""
    admin = admin_of(stores.admin)
    admin.create("Contested", tenant_id="contested")
    racing = admin_of(Interposed(stores.admin,  # type: ignore[arg-type]
                                 lambda: admin_of(stores.admin).disable("contested")))
    racing.delete("contested")
    assert stores.admin.tenant_registry().get("contested") is None
    assert left_rows(stores.admin, "contested") == TOMBSTONE


def test_disable_and_enable_in_turn_never_lose_one(stores: Stores) -> None:
    """An enable overtaken by a disable retries against the disabled row: it lands after it
    (enabled), and the feed's last state event says enabled too."""
    admin = admin_of(stores.admin)
    admin.create("Toggled", tenant_id="toggled")
    admin.disable("toggled")
    seen: list[str] = []

    def disable_again() -> None:
        other = admin_of(stores.admin)
        other.enable("toggled")
        other.disable("toggled")
        seen.append(other.show("toggled").state)

    racing = admin_of(Interposed(stores.admin, disable_again))  # type: ignore[arg-type]
    assert racing.enable("toggled").state == ENABLED
    assert seen == [DISABLED]
    assert admin.show("toggled").state == ENABLED
    view = stores.admin.tenant("toggled")
    last = view.events(after=view.position() - 1, limit=1)
    assert [str(e.type) for e in last] == ["tenant.enabled"]


# -- 1. the race on a dev host with 4 worker processes ------------------------------------


@dataclass
class Call:
    started: float
    ended: float
    status: int


@dataclass
class Writer:
    """POSTs users through one keep-alive connection until stopped, timing each call."""

    index: int
    port: int
    token: str
    stop: threading.Event
    calls: list[Call] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        client = HttpClient(self.port, "racing", self.token)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                started = time.monotonic()
                try:
                    answer = client.post("/Users", user(f"w{self.index}-{n}@example.com"))
                except OSError as error:
                    self.errors.append(repr(error))
                    continue
                self.calls.append(Call(started, time.monotonic(), answer.status))
        finally:
            client.close()


@pytest.fixture
def devhost_on(azurite: Azurite, tmp_path: Path) -> Iterator[Callable[[str], int]]:
    """Starts a dev host with WORKERS worker processes over a table; yields the starter,
    which returns the port."""
    hosts: list[subprocess.Popen[bytes]] = []

    def start(table: str) -> int:
        port = free_port()
        env = {**os.environ, "SCIM_STORE": "tables",
               "SCIM_TABLES_CONNECTION": azurite.connection_string, "SCIM_TABLE_NAME": table,
               "SCIM_BEARER_TOKEN": "unused-default-token-0123456789abcdefghijklmnop",
               "FUNCTIONS_WORKER_PROCESS_COUNT": str(WORKERS)}
        for name in ("SCIM_TABLES_ENDPOINT", "SCIM_KEYVAULT_URL", "SCIM_EVENTS_QUEUE",
                     "SCIM_QUEUES_ENDPOINT", "SCIM_BASE_URL", "SCIM_EXTENSION_SCHEMAS"):
            env[name] = ""
        log = (tmp_path / "devhost.log").open("wb")
        host = subprocess.Popen([sys.executable, "-m", "devhost", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        hosts.append(host)
        deadline = time.monotonic() + 30
        while f"({WORKERS} worker processes)" not in (tmp_path / "devhost.log").read_text(
                errors="replace"):
            assert host.poll() is None and time.monotonic() < deadline, "no dev host"
            time.sleep(0.05)
        return port

    yield start
    for host in hosts:
        host.terminate()
        try:
            host.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(host.pid, 9)
            host.wait(timeout=10)


def test_writers_on_four_workers_racing_delete_leave_only_the_tombstone(
        azurite: Azurite, devhost_on: Callable[[str], int]) -> None:
    """Writers POSTing users through a dev host with 4 worker processes (each caching the
    tenant, its token and its feed head) race ``delete``: once it has returned, every
    request gets 401, and the partition holds nothing but the tombstone."""
    install_batch_codec()
    table = unique_table_name()
    client = TableClient.from_connection_string(azurite.connection_string, table_name=table,
                                                **FAST_CLIENT_OPTIONS)
    store = TableStore(client)
    try:
        admin = admin_of(store)
        _, token = admin.create("Racing", tenant_id="racing")
        port = devhost_on(table)
        stop = threading.Event()
        writers = [Writer(i, port, token, stop) for i in range(8)]
        threads = [threading.Thread(target=w.run) for w in writers]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 60
            while sum(c.status == 201 for w in writers for c in w.calls) < 80:
                assert time.monotonic() < deadline, [w.calls[-3:] for w in writers]
                time.sleep(0.05)
            admin.delete("racing", step_rows=50)
            returned = time.monotonic()
            while sum(c.started > returned for w in writers for c in w.calls) < 200:
                assert time.monotonic() < returned + 60, "writers stalled after delete"
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        calls = [c for w in writers for c in w.calls]
        after = [c.status for c in calls if c.started > returned]
        assert after and set(after) == {401}, sorted(set(after))
        assert sum(c.status == 201 for c in calls) >= 80
        assert not [e for w in writers for e in w.errors]
        assert left_rows(store, "racing") == TOMBSTONE
    finally:
        client.delete_table()
        store.close()
