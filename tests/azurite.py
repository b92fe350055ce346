"""Pytest fixtures: Azurite's table service on a free port, table stores and a fault proxy;
Azurite's queue service for the tests that need it (``serve_queue``)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from azure.data.tables import TableClient, TableEntity, UpdateMode

from bench.azurite import AZURITE_TABLE, azurite_environment, keyed_command
from scim_core.kinds import Kind
from scim_core.store.tables import TableStore, TableTenantStore
from scim_core.store.tables.batches import Step
from scim_core.store.tables.sdk_batches import install_batch_codec

__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "AZURITE_QUEUE",
    "FAST_CLIENT_OPTIONS",
    "Azurite",
    "AzuriteQueue",
    "Fault",
    "FaultProxy",
    "RecordingTableClient",
    "RequestLog",
    "TableHarness",
    "azurite",
    "fault_proxy",
    "keyed_azurite",
    "keyed_fault_proxy",
    "keyed_table_harness",
    "queue_connection_string",
    "queue_endpoint",
    "serve_queue",
    "table_harness",
    "table_store",
    "unique_table_name",
]


AZURITE_QUEUE = AZURITE_TABLE.with_name("azurite-queue")
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (  # Azurite's well-known development key; public, documented by Microsoft
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

FAST_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 0,
    "connection_timeout": 2,
    "read_timeout": 5,
    "timeout": 10,
}
"""Client options for tests: no retries and short timeouts, so a fault shows at once."""


def connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT_NAME}")


def queue_endpoint(port: int) -> str:
    """The queue endpoint of Azurite's queue service on ``port`` (path-style account)."""
    return f"http://127.0.0.1:{port}/{ACCOUNT_NAME}"


def queue_connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint={queue_endpoint(port)}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Azurite:
    """One Azurite table service process; ``stop()``/``start()`` keep the port and data.
    ``keyed`` runs it in memory with bench's keyed-lookup preload (see ``keyed_azurite``)."""

    def __init__(self, location: Path, port: int, *, keyed: bool = False) -> None:
        self.location = location
        self.port = port
        self.keyed = keyed
        self.connection_string = connection_string(port)
        self._process: subprocess.Popen[bytes] | None = None
        self._log = location / "azurite.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line that starts this service."""
        command = keyed_command() if self.keyed else [str(AZURITE_TABLE)]
        command += ["--tableHost", "127.0.0.1", "--tablePort", str(self.port), "--silent",
                    "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
        command += ["--inMemoryPersistence"] if self.keyed else ["--location", str(self.location)]
        return command

    def start(self, *, timeout: float = 30.0) -> None:
        if self.running:
            return
        command = self.command()
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.location,
                                             env=azurite_environment())
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self._log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Azurite did not start on port {self.port}:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGINT, on which Azurite saves its data and exits (on SIGTERM it would exit at
        once and lose up to five seconds of writes), then wait for the port to close."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        deadline = time.monotonic() + 5
        while _answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)


class AzuriteQueue(Azurite):
    """One Azurite queue service process (``node_modules/.bin/azurite-queue``) on a free
    loopback port, its data under ``location``; ``stop()``/``start()`` keep both."""

    def __init__(self, location: Path, port: int) -> None:
        super().__init__(location, port)
        self.connection_string = queue_connection_string(port)
        self.endpoint = queue_endpoint(port)
        self._log = location / "azurite-queue.log"

    def command(self) -> list[str]:
        """azurite-queue on 127.0.0.1:``port``, its data in ``location``."""
        return [str(AZURITE_QUEUE), "--queueHost", "127.0.0.1", "--queuePort", str(self.port),
                "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry",
                "--location", str(self.location)]


def serve_queue(location: Path) -> Iterator[AzuriteQueue]:
    """Azurite's queue service in ``location`` until the generator is closed (skips the
    test when Azurite is not installed); for a fixture: ``yield from serve_queue(path)``."""
    if not AZURITE_QUEUE.exists():
        pytest.skip(f"Azurite is not installed ({AZURITE_QUEUE} is missing): run `npm ci`")
    server = AzuriteQueue(location, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _serve(tmp_path_factory: pytest.TempPathFactory, *, keyed: bool) -> Iterator[Azurite]:
    if not AZURITE_TABLE.exists():
        pytest.skip(f"Azurite is not installed ({AZURITE_TABLE} is missing): run `npm ci`")
    server = Azurite(tmp_path_factory.mktemp("azurite"), free_port(), keyed=keyed)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's table service for the whole session, on a free 127.0.0.1 port."""
    yield from _serve(tmp_path_factory, keyed=False)


@pytest.fixture(scope="session")
def keyed_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite in memory, finding entities by their RowKey index instead of scanning the
    partition (scripts/azurite_keyed_lookups.js), for the whole session (each test has its
    own table): stock Azurite makes every insert cost O(rows in the partition), so only this
    one can hold a 100,000-member group in minutes."""
    yield from _serve(tmp_path_factory, keyed=True)


class RequestLog:
    """A ``raw_response_hook``: records the method and the decoded path and query (after
    the account) of every response the client received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str]] = []

    def __call__(self, response: Any) -> None:
        request = response.http_request
        target = unquote(request.url.split(f"/{ACCOUNT_NAME}/", 1)[-1])
        with self._lock:
            self.entries.append((request.method, target))

    def point_reads(self) -> int:
        """GETs of one entity by PartitionKey and RowKey."""
        with self._lock:
            return sum(1 for method, target in self.entries
                       if method == "GET" and "(PartitionKey=" in target)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.entries)


class RecordingTableClient(TableClient):
    """The real client; it also records how many operations each transaction carried."""

    batch_sizes: list[int]

    def submit_transaction(self, operations: Iterable[Any],
                           **kwargs: Any) -> list[Mapping[str, Any]]:
        listed = list(operations)
        self.batch_sizes.append(len(listed))
        result: list[Mapping[str, Any]] = super().submit_transaction(listed, **kwargs)
        return result


@dataclass
class TableHarness:
    store: TableStore
    client: RecordingTableClient
    requests: RequestLog
    azurite: Azurite
    extra: list[TableStore] = field(default_factory=list)

    def another_store(self, **options: Any) -> TableStore:
        """A second store on the same table (its own client), e.g. with other options."""
        client = TableClient.from_connection_string(
            options.pop("connection_string", self.azurite.connection_string),
            table_name=self.client.table_name, **{**FAST_CLIENT_OPTIONS, **options})
        store = TableStore(client)
        self.extra.append(store)
        return store


def unique_table_name() -> str:
    return "t" + uuid.uuid4().hex


@pytest.fixture
def table_harness(azurite: Azurite) -> Iterator[TableHarness]:
    """A fresh table (deleted afterwards) with a recording client and a request log."""
    yield from _harness(azurite)


@pytest.fixture
def keyed_table_harness(keyed_azurite: Azurite) -> Iterator[TableHarness]:
    """``table_harness`` on ``keyed_azurite``."""
    yield from _harness(keyed_azurite)


def _harness(azurite: Azurite) -> Iterator[TableHarness]:
    log = RequestLog()
    client = RecordingTableClient.from_connection_string(
        azurite.connection_string, table_name=unique_table_name(), raw_response_hook=log,
        **FAST_CLIENT_OPTIONS)
    assert isinstance(client, RecordingTableClient)
    client.batch_sizes = []
    install_batch_codec()  # as the app's builder does for a tables store
    harness = TableHarness(TableStore(client), client, log, azurite)
    try:
        yield harness
    finally:
        if not azurite.running:
            azurite.start()
        for extra in harness.extra:
            extra.close()
        try:
            client.delete_table()
        finally:
            harness.store.close()


@pytest.fixture
def table_store(table_harness: TableHarness) -> TableStore:
    """A TableStore on a fresh, uniquely named table with fast-failing client options."""
    return table_harness.store


# -- fault injection -----------------------------------------------------------------------

_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection",
                          "te", "upgrade", "trailer", "content-length"})


@dataclass(frozen=True)
class Fault:
    """A storage error answer: status, storage error code and extra headers."""

    status: int
    code: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def busy(cls, retry_after: str | None = "7") -> Fault:
        return cls(503, "ServerBusy", {"Retry-After": retry_after} if retry_after else {})

    def body(self) -> bytes:
        error = {"code": self.code, "message": {"lang": "en-US", "value": f"{self.code} (test)"}}
        return json.dumps({"odata.error": error}).encode()


Rule = Callable[[str, str, int], Fault | None]
"""Decides a request's fate from its method, decoded target and 0-based number."""


class FaultProxy:
    """A loopback HTTP proxy in front of Azurite: forwards every request unchanged, unless
    ``rule`` answers it with a ``Fault`` instead. Shared-key signatures do not cover the
    host, so a client pointed at the proxy talks to Azurite as usual."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.rule: Rule = lambda method, target, number: None
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle's algorithm
                # and delayed ACKs stall every response by 40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = proxy.answer(self.command, self.path, body,
                                                        list(self.headers.items()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_MERGE = relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.connection_string = connection_string(self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, method: str, path: str, body: bytes,
               headers: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]], bytes]:
        target = unquote(path.split(f"/{ACCOUNT_NAME}/", 1)[-1])
        with self._lock:
            number = len(self.requests)
            fault = self.rule(method, target, number)
            self.requests.append((method, target, fault.status if fault else 0))
        if fault is not None:
            extra = [("Content-Type", "application/json;odata=minimalmetadata"),
                     ("x-ms-error-code", fault.code), *fault.headers.items()]
            return fault.status, extra, fault.body()
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            upstream.request(method, path, body=body,
                             headers={k: v for k, v in headers if k.lower() not in _HOP_HEADERS})
            response = upstream.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS]
            return response.status, kept, payload
        finally:
            upstream.close()

    def faults(self) -> int:
        with self._lock:
            return sum(1 for *_, status in self.requests if status)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fault_proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's Azurite."""
    proxy = FaultProxy(azurite.port)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def keyed_fault_proxy(keyed_azurite: Azurite) -> Iterator[FaultProxy]:
    """``fault_proxy`` in front of ``keyed_azurite``."""
    proxy = FaultProxy(keyed_azurite.port)
    try:
        yield proxy
    finally:
        proxy.close()


class RacingTableStore(TableStore):
    """A TableStore that runs a competing write at a chosen point of its own work."""

    def __init__(self, harness: TableHarness) -> None:
        super().__init__(TableClient.from_connection_string(
            harness.azurite.connection_string, table_name=harness.client.table_name,
            **FAST_CLIENT_OPTIONS))
        self.raw = harness.client
        self.touch_group_on_read = False
        self.after_listing_groups: Callable[[], object] | None = None
        self.after_first_batch: Callable[[], object] | None = None
        harness.extra.append(self)

    def tenant(self, name: str, epoch: int | None = None) -> RacingTenantStore:
        return RacingTenantStore(self, name, epoch)


class RacingTenantStore(TableTenantStore):
    """A tenant of a RacingTableStore: its hooks run inside the store's own work."""

    def __init__(self, store: RacingTableStore, tenant: str, epoch: int | None = None) -> None:
        super().__init__(store, tenant, epoch)
        self.racing = store

    def _read(self, row_key: str, select: list[str] | None = None,
              **options: Any) -> TableEntity | None:
        entity = super()._read(row_key, select, **options)
        if self.racing.touch_group_on_read and entity is not None and row_key.startswith(
                "group:"):
            self.racing.raw.update_entity({"PartitionKey": self._partition, "RowKey": row_key,
                                           "touched": time.monotonic()}, mode=UpdateMode.MERGE)
        return entity

    def _group_ids(self, user_id: str) -> list[str]:
        found = super()._group_ids(user_id)
        hook, self.racing.after_listing_groups = self.racing.after_listing_groups, None
        if hook is not None:
            hook()
        return found

    def _submit_later(self, batches: Sequence[Sequence[Step]], kind: Kind,
                      resource_id: str, *args: Any, **kwargs: Any) -> str | None:
        # (*args, **kwargs: whatever else the store passes on, e.g. the change's meta)
        hook, self.racing.after_first_batch = self.racing.after_first_batch, None
        if hook is not None:
            hook()
        return super()._submit_later(batches, kind, resource_id, *args, **kwargs)
