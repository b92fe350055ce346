"""The systems under test: this project in process or behind the dev host, on either store."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.http_load import HttpCaller
from bench.runner import Caller
from bench.workloads import created_id, group_body

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdefghijklmnopqrstuvwxyz"
OURS = "scim-functions"
PEER = "scim2-server"
IN_PROCESS = "in-process"
HTTP = "http"


@dataclass
class Target:
    """One system on one store over one transport; ``make_caller`` gives a client."""

    system: str
    store: str
    transport: str
    make_caller: Callable[[], Caller]
    closers: list[Callable[[], None]] = field(default_factory=list)
    seed_users: Callable[[str, int, int], list[tuple[str, str]]] | None = None
    """A faster way to create users ``first..last-1`` for set-up (default: POSTs)."""
    seed_group: Callable[[str, int, Sequence[str]], str] | None = None
    """A faster way to create a group with members for set-up (default: POST + PATCHes)."""
    storage_calls: Callable[[], int] | None = None
    """How many storage requests the target has sent so far (Table Storage in process)."""
    server_pid: int | None = None
    """The child process serving it over HTTP."""

    @property
    def label(self) -> str:
        return f"{self.system} {self.store} {self.transport}"

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()


class CallCounter:
    """Counts the HTTP requests a Table Storage client sends (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


def _counting_table_store(settings: Any, counter: CallCounter) -> Any:
    """The product's TableStore, on the product's transport, counting storage requests, with
    the batch codec installed as the app's builder installs it (unless ``bench.codec``
    disabled it)."""
    from scim_core.store.tables import sdk_batches, table_store
    from scim_core.store.tables.client import (
        BoundedWaitTransport,
        endpoint_scheme,
        uses_environment_settings,
    )

    class CountingTransport(BoundedWaitTransport):  # type: ignore[misc]
        def send(self, request: Any, **kwargs: Any) -> Any:
            counter.add()
            return super().send(request, **kwargs)

    sdk_batches.install_batch_codec()
    return table_store(settings, transport=CountingTransport(
        connection_timeout=3, read_timeout=10,
        use_env_settings=uses_environment_settings(scheme=endpoint_scheme(settings))))


def in_process_caller(api: Any, headers: Mapping[str, str] | None = None) -> Caller:
    """``call(method, path, query, body) -> (status, body)`` straight into ``api.handle``
    with the bench's token (and ``headers``), as the in-process targets call the app."""
    from scim_core import Request

    base = "http://127.0.0.1/scim/v2"
    plain = {"Authorization": f"Bearer {TOKEN}", **(headers or {})}
    with_body = {**plain, "Content-Type": "application/scim+json"}

    def call(method: str, path: str, query: Mapping[str, str] | None = None,
             body: bytes | None = None) -> tuple[int, bytes]:
        response = api.handle(Request(method, path, base, query or {},
                                      plain if body is None else with_body, body or b""))
        return response.status, response.body

    return call


def ours_in_process(store: str = "memory", *, connection: str = "", table: str = "") -> Target:
    """``ScimApi.handle`` called directly: no HTTP, no Functions types. On Table Storage
    the target counts storage requests (``storage_calls``)."""
    from scim_core import Settings, build_api
    from scim_core.auth import StaticTokenSource
    from scim_core.store import GROUP, Member, MemberChange, MemoryStore, Meta

    settings = Settings(store=store, tables_connection=connection,
                        table_name=table or "scim", bearer_token=TOKEN)
    counter = CallCounter()
    backend = (MemoryStore() if store == "memory"
               else _counting_table_store(settings, counter))
    call = in_process_caller(build_api(settings, store=backend,
                                       tokens=StaticTokenSource(TOKEN)))

    def seed_group(tag: str, n: int, members: Sequence[str]) -> str:
        """POST the group, then write its memberships through the store in chunks of 1,000
        (set-up only: fewer requests than the 10-member PATCHes the cycle measures)."""
        group_id = created_id(*call("POST", "/Groups", None, group_body(tag, n)),
                              what="seed group")
        view = backend.tenant(settings.tenant)
        record = view.get(GROUP, group_id)
        assert record is not None
        for i in range(0, len(members), 1000):
            view.update(GROUP, group_id, expected_etag=None,
                           meta=Meta(record.meta.created, record.meta.last_modified,
                                     f'W/"seed{i}"'),
                           members=MemberChange(add=tuple(Member(m)
                                                          for m in members[i:i + 1000])))
        return group_id

    target = Target(OURS, store, IN_PROCESS, lambda: call, seed_group=seed_group)
    if store != "memory":
        target.storage_calls = lambda: counter.value
    return target


class ServerProcess:
    """A server in a child process that prints ``http://127.0.0.1:<port>`` once listening.

    Stopped by its own PID (terminate, then kill). Its stderr goes to a temp file, shown
    if it fails to start.
    """

    def __init__(self, argv: list[str], env: Mapping[str, str], *, timeout: float = 60.0,
                 cwd: Path = ROOT) -> None:
        self._argv = argv
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE,
                                        stderr=self._log, stdin=subprocess.DEVNULL)
        self.port = self._await_port(timeout)

    def _await_port(self, timeout: float) -> int:
        lines: queue.Queue[bytes] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout

        def pump() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            found = re.search(rb"http://127\.0\.0\.1:(\d+)", line)
            if found:
                return int(found.group(1))
        self._log.seek(0)
        errors = self._log.read()[-2000:].decode(errors="replace")
        self.stop()
        raise RuntimeError(f"{' '.join(self._argv)} did not start: {errors}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def _stat(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_cpu_s(pid: int | None) -> float | None:
    """CPU time (user + system) a process and its live child processes (the dev host's
    workers) have used so far, from /proc (Linux only)."""
    fields = None if pid is None else _stat(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])
    for entry in Path("/proc").iterdir():
        child = _stat(entry.name) if entry.name.isdigit() else None
        if child is not None and child[1] == str(pid):
            ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def child_env(extra: Mapping[str, str], *, root: Path = ROOT) -> dict[str, str]:
    """The environment for a child server of the tree at ``root``: ours, with every SCIM_
    setting made explicit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_")}
    env.update({"SCIM_KEYVAULT_URL": "", "SCIM_BASE_URL": "", "PYTHONPATH": str(root),
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def ours_http(store: str = "memory", *, connection: str = "", table: str = "",
              workers: int = 1, batch_codec: bool | None = None, root: Path = ROOT,
              counters: Path | None = None) -> Target:
    """The dev host (``python -m devhost``) of the tree at ``root`` in a child process,
    serving function_app with ``workers`` worker processes; ``batch_codec`` True or False
    forces the azure-core batch codec on or off in it (``python -m bench.codec``), None
    leaves it to the app. With ``counters`` (a directory) it runs under
    ``bench/counted_host.py``, which counts its storage traffic there."""
    if counters is not None:
        if batch_codec is not None:
            raise ValueError("counters and batch_codec cannot be combined")
        host = [str(ROOT / "bench" / "counted_host.py"), str(counters)]
    elif batch_codec is None:
        host = ["-m", "devhost"]
    else:
        host = ["-m", "bench.codec", "on" if batch_codec else "off"]
    server = ServerProcess(
        [sys.executable, *host, "--host", "127.0.0.1", "--port", "0"],
        child_env({"SCIM_STORE": store, "SCIM_TABLES_CONNECTION": connection,
                   "SCIM_TABLE_NAME": table or "scim", "SCIM_BEARER_TOKEN": TOKEN,
                   "FUNCTIONS_WORKER_PROCESS_COUNT": str(workers)}, root=root), cwd=root)
    target = Target(OURS, store, HTTP, lambda: HttpCaller(server.port, "/scim/v2", TOKEN))
    target.closers.append(server.stop)
    target.server_pid = server.process.pid
    return target
