"""`make run`'s helper: the settings file and the generated token, Azurite's table and queue
services told apart from other listeners, and a clean stop on SIGTERM as on Ctrl-C."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from bench.azurite import AZURITE_TABLE
from scripts import local_run
from scripts.local_run import Service
from tests.azurite import AZURITE_QUEUE, Azurite, free_port
from tests.support import TOKEN, HttpClient

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "local_run.py"
START_TIMEOUT = 60.0


@pytest.fixture
def settings_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copyfile(ROOT / "local.settings.example.json", tmp_path / "example.json")
    monkeypatch.setattr(local_run, "SETTINGS", tmp_path / "local.settings.json")
    monkeypatch.setattr(local_run, "EXAMPLE", tmp_path / "example.json")
    monkeypatch.delenv("SCIM_BEARER_TOKEN", raising=False)
    return tmp_path


def test_first_run_creates_settings_with_a_strong_token(settings_dir: Path) -> None:
    """The first run copies the example settings and stores a generated 256-bit token."""
    values = local_run.ensure_settings()
    token = values["SCIM_BEARER_TOKEN"]
    assert len(token) >= 43
    stored = json.loads((settings_dir / "local.settings.json").read_text())
    assert stored["Values"]["SCIM_BEARER_TOKEN"] == token


def test_later_runs_keep_the_same_token(settings_dir: Path) -> None:
    """The token pasted into Entra keeps working: a second run does not change it."""
    first = local_run.ensure_settings()["SCIM_BEARER_TOKEN"]
    assert local_run.ensure_settings()["SCIM_BEARER_TOKEN"] == first


def test_a_token_in_the_environment_is_not_overwritten(settings_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With SCIM_BEARER_TOKEN in the environment no token is generated into the file."""
    monkeypatch.setenv("SCIM_BEARER_TOKEN", "chosen-token")
    values = local_run.ensure_settings()
    assert values["SCIM_BEARER_TOKEN"] == ""


# -- telling Azurite from other listeners ---------------------------------------------------


class _Answering(BaseHTTPRequestHandler):
    """An HTTP server that is not Azurite: 200 and a body to every GET."""

    def do_GET(self) -> None:
        body = b"<html>not storage</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[int]:
    """A plain HTTP server on a free loopback port; its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP listener that accepts connections and never answers; its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_the_probe_tells_azurites_services_from_other_listeners(
        azurite: Azurite, web_server: int, silent_listener: int) -> None:
    """Azurite's table service is recognised as Azurite's table service and not as its
    queue service; an HTTP server, a listener that never answers and a closed port are not
    Azurite (the closed port is told apart as nothing listening)."""
    assert local_run.probe(Service("table", azurite.port)) is True
    assert local_run.probe(Service("queue", azurite.port)) is False
    assert local_run.probe(Service("table", web_server)) is False
    assert local_run.probe(Service("table", silent_listener), timeout=0.5) is False
    assert local_run.probe(Service("queue", free_port())) is None


# -- make run as a process ------------------------------------------------------------------


@dataclass
class Run:
    """``scripts/local_run.py`` (what ``make run`` starts) in its own process group."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def exit_code(self, timeout: float = 40) -> int:
        """Wait for the process to exit and its output to be read; its exit code."""
        code = self.process.wait(timeout=timeout)
        if self.reader is not None:
            self.reader.join(timeout=5)
        return code

    def wait_ready(self) -> int:
        """Wait for the "Press Ctrl+C" line; the dev host's port from the Tenant URL."""
        deadline = time.monotonic() + START_TIMEOUT
        while "Press Ctrl+C to stop." not in self.output:
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, self.output
            time.sleep(0.05)
        url = next(line for line in self.lines if line.startswith("Tenant URL:")).split()[-1]
        return int(url.split(":")[2].split("/")[0])

    def children(self) -> list[int]:
        """The processes this run started (Azurite's services)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                found.append(int(stat.parent.name))
        return found


def start_run(tmp_path: Path, table_port: int, queue_port: int, **env: str) -> Run:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("SCIM_", "AZURITE")) and k != "PORT"}
    environment.update({"SCIM_STORE": "tables", "SCIM_BEARER_TOKEN": TOKEN,
                        "SCIM_TABLES_CONNECTION": "UseDevelopmentStorage=true",
                        "SCIM_TABLE_NAME": "localrun", "PYTHONUNBUFFERED": "1", **env})
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", "0", "--table-port", str(table_port),
         "--queue-port", str(queue_port), "--data", str(tmp_path / "data"),
         "--settings", str(tmp_path / "local.settings.json")],
        cwd=ROOT, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    run = Run(process)
    run.reader = threading.Thread(target=run._read, daemon=True)
    run.reader.start()
    return run


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    """Runs a test started; any still going at the end are killed with their children."""
    started: list[Run] = []
    yield started
    for run in started:
        if run.process.poll() is None:
            for pid in run.children():
                os.kill(pid, signal.SIGKILL)
            run.process.kill()
            run.process.wait(timeout=10)


needs_azurite = pytest.mark.skipif(not (AZURITE_TABLE.exists() and AZURITE_QUEUE.exists()),
                                   reason="Azurite is not installed: run `npm ci`")


def queued(queue_port: int, queue: str) -> list[dict[str, Any]]:
    """The messages on ``queue`` of the Azurite queue service on ``queue_port``, decoded
    (none while the queue does not exist)."""
    connection = local_run.development_connection(free_port(), queue_port)
    with QueueClient.from_connection_string(connection, queue) as client:
        try:
            peeked = client.peek_messages(max_messages=32)
        except ResourceNotFoundError:
            return []
        return [json.loads(base64.b64decode(m.content)) for m in peeked]


@needs_azurite
@pytest.mark.parametrize(("signum", "to_group"), [
    (signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, True)],
    ids=["sigterm-process", "sigterm-group", "ctrl-c-group"])
def test_make_run_serves_on_azurite_and_stops_everything_on_a_signal(
        tmp_path: Path, runs: list[Run], signum: int, to_group: bool) -> None:
    """``make run`` starts Azurite's table and queue services and the dev host on them (a
    created user is stored and nudges SCIM_EVENTS_QUEUE); SIGTERM to its process or its
    process group stops it as Ctrl-C does: Azurite's processes exit, every port is free
    again and Azurite saved the data, which the next run serves."""
    table_port, queue_port = free_port(), free_port()
    queue = "events-" + uuid.uuid4().hex[:12]
    run = start_run(tmp_path, table_port, queue_port, SCIM_EVENTS_QUEUE=queue)
    runs.append(run)
    port = run.wait_ready()
    azurites = run.children()
    assert len(azurites) == 2 and listening(table_port) and listening(queue_port)
    client = HttpClient(port)
    try:
        created = client.create_user("local@contoso.example")
    finally:
        client.close()
    deadline = time.monotonic() + 30
    while not (messages := queued(queue_port, queue)):
        assert time.monotonic() < deadline, "no nudge reached the queue"
        time.sleep(0.2)
    assert messages == [{"tenant": "default", "position": 1}]

    if to_group:
        os.killpg(run.process.pid, signum)
    else:
        run.process.send_signal(signum)
    assert run.exit_code() == 0, run.output
    assert not [pid for pid in azurites if alive(pid)]
    assert not any(listening(p) for p in (port, table_port, queue_port))

    again = start_run(tmp_path, table_port, queue_port)
    runs.append(again)
    client = HttpClient(again.wait_ready())
    try:
        stored = client.get(f"/Users/{created['id']}").json
        assert (stored["userName"], stored["meta"]["version"]) == (
            created["userName"], created["meta"]["version"])
    finally:
        client.close()
    again.process.send_signal(signal.SIGTERM)
    assert again.exit_code() == 0, again.output


@needs_azurite
def test_an_azurite_already_listening_is_used_and_left_running(
        tmp_path: Path, runs: list[Run], azurite: Azurite) -> None:
    """With Azurite's table service already on the table port, ``make run`` uses it (the dev
    host stores users there), starts only the queue service, and on SIGTERM stops only what
    it started."""
    queue_port = free_port()
    run = start_run(tmp_path, azurite.port, queue_port,
                    SCIM_TABLE_NAME="t" + uuid.uuid4().hex)
    runs.append(run)
    port = run.wait_ready()
    assert f"Using the Azurite table service already on 127.0.0.1:{azurite.port}." in run.output
    assert len(run.children()) == 1
    client = HttpClient(port)
    try:
        client.create_user("reused@contoso.example")
    finally:
        client.close()
    run.process.send_signal(signal.SIGTERM)
    assert run.exit_code() == 0, run.output
    assert local_run.probe(Service("table", azurite.port)) is True
    assert not listening(queue_port)


@pytest.mark.parametrize("service", ["table", "queue"])
def test_a_listener_that_is_not_azurite_on_a_storage_port_is_refused(
        tmp_path: Path, runs: list[Run], web_server: int, service: str) -> None:
    """An HTTP server that is not Azurite on the table or the queue port: ``make run`` exits
    with an error naming that port, and starts neither Azurite nor the dev host."""
    other = free_port()
    table_port, queue_port = (web_server, other) if service == "table" else (other, web_server)
    run = start_run(tmp_path, table_port, queue_port)
    runs.append(run)
    assert run.exit_code(timeout=30) != 0
    assert (f"Port {web_server} on 127.0.0.1 is taken by something that is not Azurite's "
            f"{service} service") in run.output
    assert "Tenant URL" not in run.output
    assert not listening(other)
