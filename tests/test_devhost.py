"""The dev host: routes from function_app and host.json, settings, HTTP behaviour."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import devhost
import function_app
from tests.azurite import Azurite, unique_table_name
from tests.support import ERROR_SCHEMA, TOKEN, HttpClient

pytest_plugins = ["tests.azurite"]

ROOT = Path(__file__).resolve().parent.parent


def test_route_template_with_empty_prefix_matches_scim_paths() -> None:
    """routePrefix "" and scim/v2/{*path} match /scim/v2/Users/1 with path=Users/1."""
    pattern = devhost.route_pattern("", "scim/v2/{*path}")
    match = pattern.match("/scim/v2/Users/1")
    assert match is not None and match.group("path") == "Users/1"
    assert pattern.match("/SCIM/V2/Users") is not None
    assert pattern.match("/api/scim/v2/Users") is None


def test_route_prefix_and_parameters_follow_the_functions_host_rules() -> None:
    """A routePrefix is prepended; {id}, {id:int} and {opt?} become named segments."""
    pattern = devhost.route_pattern("api", "items/{id:int}/{name}")
    match = pattern.match("/api/items/7/x")
    assert match is not None and match.groupdict() == {"id": "7", "name": "x"}
    assert pattern.match("/items/7/x") is None


def test_timer_triggers_are_left_out_of_the_served_routes() -> None:
    """The dev host serves the HTTP triggers only; the retention timer is not a route."""
    names = [route.name for route in devhost.load_routes()]
    assert names == ["scim", "tenant_scim", "manage", "setup"]
    function_app.app.functions_bindings = None
    registered = [f.get_function_name() for f in function_app.app.get_functions()]
    function_app.app.functions_bindings = None
    assert "events_retention" in registered


def test_route_prefix_is_read_from_host_json() -> None:
    """The dev host takes routePrefix from host.json (empty: the Tenant URL is /scim/v2)."""
    assert devhost.route_prefix(ROOT) == ""


def test_local_settings_values_do_not_override_the_environment(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """local.settings.json Values fill the environment, but the environment wins."""
    (tmp_path / "local.settings.json").write_text(json.dumps(
        {"Values": {"DEVHOST_T_A": "from-file", "DEVHOST_T_B": "from-file"}}))
    monkeypatch.setenv("DEVHOST_T_A", "from-env")
    monkeypatch.delenv("DEVHOST_T_B", raising=False)
    devhost.load_settings(tmp_path)
    assert os.environ["DEVHOST_T_A"] == "from-env"
    assert os.environ["DEVHOST_T_B"] == "from-file"
    monkeypatch.delenv("DEVHOST_T_B")


def test_http_requests_are_served_through_the_registered_function(http_client: HttpClient
                                                                  ) -> None:
    """Over HTTP the dev host serves SCIM responses, 401s and 404s from function_app."""
    assert http_client.get("/ServiceProviderConfig").status == 200
    denied = http_client.get("/Users", token=None)
    assert denied.status == 401 and denied.json["schemas"] == [ERROR_SCHEMA]
    assert http_client.get("/Unknown").status == 404
    created = http_client.create_user("grace@x.test")
    fetched = http_client.get(f"/Users/{created['id']}")
    assert fetched.json["userName"] == "grace@x.test"
    assert fetched.header("Content-Type").startswith("application/scim+json")


def test_keep_alive_serves_many_requests_on_one_connection(devhost_port: int,
                                                           http_client: HttpClient) -> None:
    """HTTP/1.1 keep-alive: several requests reuse one TCP connection."""
    connection = http.client.HTTPConnection("127.0.0.1", devhost_port, timeout=10)
    connection.connect()
    local = connection.sock.getsockname()
    for _ in range(5):
        connection.request("GET", "/scim/v2/ServiceProviderConfig")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert connection.sock is not None and connection.sock.getsockname() == local
    connection.close()


def test_paths_outside_any_route_get_404(devhost_port: int) -> None:
    """A path no trigger's route matches answers 404, as the Functions host does."""
    connection = http.client.HTTPConnection("127.0.0.1", devhost_port, timeout=10)
    connection.request("GET", "/elsewhere")
    assert connection.getresponse().status == 404
    connection.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_python_m_devhost_serves_service_provider_config(tmp_path: Path) -> None:
    """`python -m devhost --port N` starts a server that answers GET ServiceProviderConfig."""
    port = _free_port()
    env = {**os.environ, "SCIM_STORE": "memory", "SCIM_BEARER_TOKEN": TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "devhost", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/scim/v2/ServiceProviderConfig")
                response = connection.getresponse()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "devhost did not start"
                time.sleep(0.1)
        assert response.status == 200
        assert json.loads(response.read())["patch"]["supported"] is True
        connection.request("GET", "/scim/v2/Users",
                           headers={"Authorization": f"Bearer {TOKEN}"})
        assert connection.getresponse().status == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(("raw", "count"), [("", 1), ("0", 1), ("1", 1), ("3", 3), ("10", 10),
                                            ("11", 1), ("two", 1), (" 2 ", 2)])
def test_worker_count_follows_functions_worker_process_count(
        raw: str, count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """FUNCTIONS_WORKER_PROCESS_COUNT from 1 to 10 sets the worker processes; else 1."""
    monkeypatch.setenv("FUNCTIONS_WORKER_PROCESS_COUNT", raw)
    assert devhost.worker_count() == count


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and stat.rsplit(")", 1)[1].split()[1] == str(pid):
            found.append(int(entry.name))
    return found


def test_worker_processes_share_the_port_and_stop_with_the_host(azurite: Azurite) -> None:
    """With FUNCTIONS_WORKER_PROCESS_COUNT=2 the host runs two workers on one port, which
    serve one Table Storage state over any connection, and stopping the host stops both."""
    port = _free_port()
    env = {**os.environ, "SCIM_STORE": "tables", "SCIM_BEARER_TOKEN": TOKEN,
           "SCIM_TABLES_CONNECTION": azurite.connection_string,
           "SCIM_TABLE_NAME": unique_table_name(), "FUNCTIONS_WORKER_PROCESS_COUNT": "2"}
    process = subprocess.Popen([sys.executable, "-m", "devhost", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        assert b"(2 worker processes)" in (process.stdout.readline() if process.stdout else b"")
        deadline = time.monotonic() + 10
        while len(workers := _children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2
        client = HttpClient(port)
        user = client.create_user("shared@contoso.example")["id"]
        seen = [HttpClient(port).get(f"/Users/{user}").status
                for _ in range(8)]
        assert seen == [200] * 8
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
