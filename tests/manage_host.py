"""A dev host on Azurite for the management API's HTTP tests, with a manage-scope API key
created by ``python -m scim_core.admin api-key create``."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scim_core import admin
from tests.azurite import Azurite, unique_table_name
from tests.support import TOKEN

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ManageHost:
    port: int
    key: str
    env: dict[str, str]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/manage/v1"

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Authorization": f"Bearer {key or self.key}", **(headers or {})}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        connection.request(method, path if path.startswith("/") else "/" + path, data, sent)
        response = connection.getresponse()
        raw = response.read()
        connection.close()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                json.loads(raw) if raw else None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_manage(azurite: Azurite, tmp_path: Path, extra: dict[str, str] | None = None
                 ) -> Iterator[ManageHost]:
    """Start ``python -m devhost`` on Azurite (a fresh table), with ``extra`` settings;
    yield it with a key."""
    env = {**os.environ, "SCIM_STORE": "tables", "SCIM_BEARER_TOKEN": TOKEN,
           "SCIM_TABLES_CONNECTION": azurite.connection_string,
           "SCIM_TABLE_NAME": unique_table_name(), **(extra or {})}
    out = io.StringIO()
    assert admin.main(["api-key", "create", "--scope", "manage", "--description", "tests"],
                      env=env, root=tmp_path, out=out) == 0
    key = out.getvalue().splitlines()[1].strip()
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "devhost", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, \
                    "devhost did not start"
                time.sleep(0.1)
        yield ManageHost(port, key, env)
    finally:
        process.terminate()
        process.wait(timeout=10)
