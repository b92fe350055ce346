"""Faults: Table Storage (Azurite) killed and restarted mid-load, storage made slow by a
delaying proxy, and the Key Vault fake failing. Clients see 503 with Retry-After (never a
500), the process and the API object stay usable, and after recovery requests succeed and
the store is consistent."""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient

from scim_core import Settings, build_api
from scim_core.auth.keyvault import KeyVaultTokenSource
from scim_core.store import MemoryStore
from scim_core.store.tables import TableStore
from tests.azurite import (
    FAST_CLIENT_OPTIONS,
    Azurite,
    TableHarness,
    connection_string,
    unique_table_name,
)
from tests.conftest import make_api
from tests.kvfake import FakeKeyVault
from tests.reliability import (
    assert_scim_error,
    check_store_invariants,
    check_table_rows,
    count,
    write_figures,
)
from tests.support import (
    GROUP_SCHEMA,
    PATCH_OP,
    TOKEN,
    USER_SCHEMA,
    FunctionClient,
    Result,
    use_api,
)

SUITE = "faults"
SECRET = "scim-bearer-token"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    write_figures(SUITE)


def assert_unavailable(result: Result) -> None:
    """503, a SCIM Error body and a positive integer Retry-After."""
    assert result.status == 503, (result.status, result.body[:300])
    assert_scim_error(result, allowed=(503,))
    retry_after = result.header("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) > 0


# -- Key Vault -------------------------------------------------------------------------------


@pytest.fixture
def vault() -> Iterator[FakeKeyVault]:
    with FakeKeyVault() as fake:
        fake.add_version(SECRET, TOKEN)
        yield fake


def _kv_client(vault: FakeKeyVault, *, cache_seconds: float = 0.5,
               min_refresh_interval: float = 0.2) -> tuple[FunctionClient, KeyVaultTokenSource]:
    source = KeyVaultTokenSource(vault.client(read_timeout=1, connection_timeout=1), SECRET,
                                 cache_seconds=cache_seconds,
                                 min_refresh_interval=min_refresh_interval, wait_seconds=3)
    use_api(build_api(Settings(store="memory"), store=MemoryStore(), tokens=source))
    return FunctionClient(), source


@pytest.mark.parametrize("fault", ["status-500", "status-503", "connection-drop", "slow"])
def test_key_vault_failing_with_a_warm_cache_keeps_serving(vault: FakeKeyVault,
                                                           fault: str) -> None:
    """With the token cached, a failing or slow Key Vault does not stop requests: they keep
    succeeding past the cache TTL, wrong tokens are still refused, and no 5xx appears."""
    client, source = _kv_client(vault)
    assert client.get("/Users").status == 200
    _break_vault(vault, fault)
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + 2.0  # four cache lifetimes
    while time.monotonic() < deadline:
        statuses[client.get("/Users").status] += 1
        statuses[client.get("/Users", token="wrong-" + TOKEN).status] += 1
        time.sleep(0.01)
    source.close()
    count(f"{SUITE}.requests", sum(statuses.values()))
    count(f"{SUITE}.survived.key_vault_warm")
    assert set(statuses) == {200, 401}, statuses
    assert vault.count("total") > 1, "the vault was never asked again after the fault"


def _break_vault(vault: FakeKeyVault, fault: str) -> None:
    if fault.startswith("status-"):
        vault.fail_status = int(fault.removeprefix("status-"))
    elif fault == "connection-drop":
        vault.close_connections = True
    else:
        vault.delay_seconds = 2.5  # beyond the client's 1 s read timeout


@pytest.mark.parametrize("fault", ["status-500", "connection-drop", "slow"])
def test_key_vault_failing_with_a_cold_cache_answers_503_then_recovers(
        vault: FakeKeyVault, fault: str) -> None:
    """With nothing cached, a failing Key Vault makes protected requests 503 + Retry-After
    (never 401 or 500) while discovery stays up; once the vault answers again requests
    succeed on the same API object."""
    _break_vault(vault, fault)
    client, source = _kv_client(vault)
    started = time.monotonic()
    for _ in range(3):
        assert_unavailable(client.get("/Users"))
    assert time.monotonic() - started < 15, "a failing vault must not hang requests"
    assert client.get("/ServiceProviderConfig").status == 200
    vault.fail_status, vault.close_connections, vault.delay_seconds = None, False, 0.0
    deadline = time.monotonic() + 5
    while (result := client.get("/Users")).status != 200 and time.monotonic() < deadline:
        assert_unavailable(result)
        time.sleep(0.1)
    assert result.status == 200
    assert client.get("/Users", token="wrong-" + TOKEN).status == 401
    source.close()
    count(f"{SUITE}.requests", 6)
    count(f"{SUITE}.responses_503", 3)
    count(f"{SUITE}.survived.key_vault_cold")


def test_key_vault_outage_under_concurrent_load(vault: FakeKeyVault,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """8 threads hammering while the vault fails and recovers: every answer is 200, 401 or
    503 + Retry-After, never a 500, and no log record holds the token."""
    caplog.set_level(logging.DEBUG)
    client, source = _kv_client(vault, cache_seconds=0.3, min_refresh_interval=0.1)
    statuses: Counter[int] = Counter()
    bad: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def hammer(i: int) -> None:
        own = FunctionClient()
        while not stop.is_set():
            token = TOKEN if i % 4 else "wrong-" + TOKEN
            result = own.get("/Users", token=token)
            with lock:
                statuses[result.status] += 1
                if result.status == 503 and not result.header("Retry-After"):
                    bad.append("503 without Retry-After")
                if result.status not in (200, 401, 503):
                    bad.append(f"{result.status} {result.body[:200]!r}")

    threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    for fault in ("status-503", "connection-drop", "status-500"):
        time.sleep(0.4)
        _break_vault(vault, fault)
        time.sleep(0.8)
        vault.fail_status, vault.close_connections = None, False
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    source.close()
    assert not bad, bad[:5]
    assert statuses[200] > 0 and statuses[401] > 0, statuses
    assert client.get("/Users").status == 200
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    count(f"{SUITE}.requests", sum(statuses.values()))
    count(f"{SUITE}.responses_503", statuses[503])
    count(f"{SUITE}.survived.key_vault_flapping", 3)


# -- Table Storage ---------------------------------------------------------------------------


class DelayProxy:
    """A TCP proxy on 127.0.0.1 in front of Azurite: ``delay`` seconds before each chunk of
    every answer, or ``drop`` to cut every connection at its first answer."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self.drop = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if answers and self.drop:
                    break
                if answers and self.delay and self._closed.wait(self.delay):
                    break
                sink.sendall(chunk)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()


class TableApi:
    """An API on its own table, reached directly or through a DelayProxy."""

    def __init__(self, azurite: Azurite, *, proxy: DelayProxy | None = None,
                 **options: Any) -> None:
        self.name = unique_table_name()
        port = proxy.port if proxy is not None else azurite.port
        self.store = TableStore(TableClient.from_connection_string(
            connection_string(port), table_name=self.name, **{**FAST_CLIENT_OPTIONS, **options}))
        self.raw = TableClient.from_connection_string(azurite.connection_string,
                                                      table_name=self.name)
        use_api(make_api(self.store))

    def check(self) -> int:
        """The store's invariants, through the protocol and in the raw rows."""
        return check_store_invariants(self.store) + check_table_rows(self.raw)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.delete_table()
        self.raw.close()
        self.store.close()


def wait_persisted(azurite: Azurite, needle: str, timeout: float = 15.0) -> None:
    """Wait until Azurite has saved ``needle`` to disk. Azurite (LokiJS) saves every few
    seconds and a stop loses what it had not saved yet, which durable Table Storage never
    does; the tests below only stop it once the data they rely on is on disk."""
    database = azurite.location / "__azurite_db_table__.json"
    deadline = time.monotonic() + timeout
    while not (database.exists() and needle in database.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"Azurite did not save {needle!r}"
        time.sleep(0.2)


@pytest.fixture
def restartable(azurite: Azurite) -> Iterator[Azurite]:
    """The session's Azurite, guaranteed running again after the test."""
    yield azurite
    if not azurite.running:
        azurite.start()


class Load:
    """Threads sending an Entra-like write mix through the registered function; records
    every status and flags any answer outside ``allowed`` or a 503 without Retry-After."""

    def __init__(self, threads: int = 4) -> None:
        self.statuses: Counter[int] = Counter()
        self.bad: list[str] = []
        self.marks: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "a load thread hung"

    def _record(self, result: Result) -> Result:
        with self._lock:
            self.statuses[result.status] += 1
            self.marks.append((time.monotonic(), result.status))
            if result.status == 503:
                try:
                    assert_unavailable(result)
                except AssertionError as exc:
                    self.bad.append(str(exc)[:300])
                self._stop.wait(0.05)  # a client backs off; no need to spin on an outage
            elif result.status >= 500 or result.status in (401, 413):
                self.bad.append(f"{result.status} {result.body[:300]!r}")
        return result

    def _run(self, index: int) -> None:
        client = FunctionClient()
        rng = random.Random(index)
        group_id: str | None = None
        users: list[str] = []
        step = 0
        while not self._stop.is_set():
            step += 1
            name = f"load{index}-{rng.randrange(30)}@contoso.example"
            if group_id is None:
                created = self._record(client.post("/Groups", {
                    "schemas": [GROUP_SCHEMA], "displayName": f"Load {index} {step}"}))
                group_id = created.json["id"] if created.status == 201 else None
                continue
            roll = rng.random()
            if roll < 0.3 or not users:
                created = self._record(client.post("/Users", {
                    "schemas": [USER_SCHEMA], "userName": name, "active": True}))
                if created.status == 201:
                    users.append(created.json["id"])
            elif roll < 0.5:
                self._record(client.patch(f"/Groups/{group_id}", {
                    "schemas": [PATCH_OP], "Operations": [{
                        "op": "add", "path": "members",
                        "value": [{"value": rng.choice(users)}]}]}))
            elif roll < 0.6:
                self._record(client.patch(f"/Groups/{group_id}", {
                    "schemas": [PATCH_OP], "Operations": [{
                        "op": "remove", "path": f'members[value eq "{rng.choice(users)}"]'}]}))
            elif roll < 0.7:
                self._record(client.patch(f"/Users/{rng.choice(users)}", {
                    "schemas": [PATCH_OP], "Operations": [{
                        "op": "replace", "path": "active", "value": rng.random() < 0.5}]}))
            elif roll < 0.8:
                victim = users.pop(rng.randrange(len(users)))
                self._record(client.delete(f"/Users/{victim}"))
            else:
                self._record(client.get("/Users", params={"filter": f'userName eq "{name}"'}))

    def successes_after(self, moment: float) -> int:
        with self._lock:
            return sum(1 for at, status in self.marks if at > moment and status < 300)


def _wait_until_served(client: FunctionClient, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (result := client.get("/Users")).status != 200:
        assert_unavailable(result)
        assert time.monotonic() < deadline, "requests did not recover"
        time.sleep(0.2)


def test_azurite_stopped_and_restarted_mid_load(restartable: Azurite) -> None:
    """Azurite stopped under a 4-thread write mix: requests get 503 + Retry-After (never a
    500), the API object keeps serving, and once Azurite is back requests succeed again
    and every store invariant holds, in the protocol's view and in the raw rows."""
    api = TableApi(restartable)
    client = FunctionClient()
    try:
        client.create_user("before@contoso.example")
        wait_persisted(restartable, "before@contoso.example")
        with Load() as load:
            time.sleep(1.5)
            restartable.stop()
            stopped = time.monotonic()
            outage = [client.get("/Users"), client.post("/Users", {"userName": "x@y"}),
                      client.get("/ServiceProviderConfig")]
            time.sleep(2.0)
            restartable.start()
            restarted = time.monotonic()
            _wait_until_served(client)
            time.sleep(2.0)
        assert_unavailable(outage[0])
        assert_unavailable(outage[1])
        assert outage[2].status == 200  # discovery needs no storage
        assert not load.bad, load.bad[:5]
        assert load.statuses[503] > 0, load.statuses
        assert load.successes_after(restarted) > 0, load.statuses
        assert load.successes_after(0) > load.successes_after(stopped)
        checks = api.check()
        count(f"{SUITE}.requests", sum(load.statuses.values()) + 3)
        count(f"{SUITE}.responses_503", load.statuses[503] + 2)
        count(f"{SUITE}.invariant_checks", checks)
        count(f"{SUITE}.survived.azurite_restart")
    finally:
        if not restartable.running:
            restartable.start()
        api.close()


def test_azurite_restarted_twice_in_a_row_keeps_one_api_usable(restartable: Azurite) -> None:
    """Two outages back to back, with the same API object throughout: each ends in
    successful requests and a consistent store."""
    api = TableApi(restartable)
    client = FunctionClient()
    try:
        for round_number in range(2):
            client.create_user(f"round{round_number}@contoso.example")
            wait_persisted(restartable, f"round{round_number}@contoso.example")
            restartable.stop()
            assert_unavailable(client.get("/Users"))
            assert_unavailable(client.post("/Users", {"userName": f"lost{round_number}@x"}))
            restartable.start()
            _wait_until_served(client)
            count(f"{SUITE}.survived.azurite_restart")
        names = {u["userName"] for u in client.get("/Users").json["Resources"]}
        assert {"round0@contoso.example", "round1@contoso.example"} <= names
        count(f"{SUITE}.invariant_checks", api.check())
        count(f"{SUITE}.requests", 10)
    finally:
        if not restartable.running:
            restartable.start()
        api.close()


@pytest.mark.parametrize("fault", ["slow", "drop"])
def test_slow_or_cut_storage_answers_503_then_recovers(azurite: Azurite, fault: str) -> None:
    """Storage answering slower than the client's read timeout (or cutting connections)
    gives 503 + Retry-After, never a 500, within a bounded time; once storage is healthy
    the same API serves again and the store is consistent."""
    proxy = DelayProxy(azurite.port)
    api = TableApi(azurite, proxy=proxy, read_timeout=1, connection_timeout=1, timeout=3)
    client = FunctionClient()
    try:
        user = client.create_user("slow@contoso.example")
        group = client.create_group("Slow Group")
        if fault == "slow":
            proxy.delay = 2.5
        else:
            proxy.drop = True
        started = time.monotonic()
        answers = [
            client.get(f"/Users/{user['id']}"),
            client.get("/Users", params={"filter": 'userName eq "slow@contoso.example"'}),
            client.post("/Users", {"schemas": [USER_SCHEMA], "userName": "late@contoso.example"}),
            client.patch_ops(f"/Groups/{group['id']}", {"op": "add", "path": "members",
                                                        "value": [{"value": user["id"]}]}),
            client.delete(f"/Users/{user['id']}"),
        ]
        elapsed = time.monotonic() - started
        for answer in answers:
            assert_unavailable(answer)
        assert elapsed < 30, elapsed
        proxy.delay, proxy.drop = 0.0, False
        _wait_until_served(client)
        assert client.get(f"/Users/{user['id']}").status in (200, 404)
        count(f"{SUITE}.invariant_checks", api.check())
        count(f"{SUITE}.requests", len(answers) + 2)
        count(f"{SUITE}.responses_503", len(answers))
        count(f"{SUITE}.survived.slow_storage" if fault == "slow" else
              f"{SUITE}.survived.cut_connections")
    finally:
        proxy.close()
        api.close()


def test_lost_table_is_recreated_by_writes_and_listings(table_harness: TableHarness) -> None:
    """When the table vanishes (deleted by an operator, or lost by storage), the next
    creates and listings re-create it rather than answering 503 until a point read."""
    use_api(make_api(table_harness.store))
    client = FunctionClient()
    client.create_user("before@contoso.example")
    table_harness.client.delete_table()
    created = [client.post("/Users", {"schemas": [USER_SCHEMA],
                                      "userName": f"after{i}@contoso.example"})
               for i in range(3)]
    for result in created:
        assert result.status in (201, 503), result.status
    assert any(r.status == 201 for r in created), [(r.status, r.body) for r in created]
    assert client.get("/Users").status == 200
