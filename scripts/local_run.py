"""``make run``: Azurite's table and queue services plus the dev host, printing the Tenant URL
and bearer token; SIGTERM, SIGHUP and Ctrl-C stop all of them.

A token is generated once and kept in local.settings.json (which git ignores) when none
is set, so the value pasted into Entra keeps working across restarts.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "local.settings.json"
EXAMPLE = ROOT / "local.settings.example.json"
BIN = ROOT / "node_modules" / ".bin"
DATA = ROOT / ".azurite"
TABLE_PORT = 10002
QUEUE_PORT = 10001
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop ``make run`` as Ctrl-C (SIGINT) does."""


@dataclass(frozen=True)
class Service:
    """One Azurite service: its binary, its port, and the request and ``Server`` header by
    which it is told apart from anything else listening there."""

    name: str
    port: int

    @property
    def binary(self) -> Path:
        return BIN / f"azurite-{self.name}"

    @property
    def probe_path(self) -> str:
        return f"/{ACCOUNT}/Tables" if self.name == "table" else f"/{ACCOUNT}?comp=list"

    @property
    def server_header(self) -> str:
        return f"Azurite-{self.name.title()}/"

    def command(self, location: Path) -> list[str]:
        return [str(self.binary), f"--{self.name}Host", "127.0.0.1",
                f"--{self.name}Port", str(self.port), "--location", str(location),
                "--silent", "--skipApiVersionCheck", "--disableTelemetry"]


class NotAzurite(SystemExit):
    """Something other than Azurite's expected service listens on a storage port."""


class Stop(Exception):
    """A stop signal (SIGTERM, SIGHUP) arrived: shut down as on Ctrl-C."""


def ensure_settings(path: Path | None = None) -> dict[str, str]:
    """local.settings.json with a bearer token, created from the example if missing."""
    path = path or SETTINGS
    if not path.exists():
        shutil.copyfile(EXAMPLE, path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    values = doc.setdefault("Values", {})
    if not os.environ.get("SCIM_BEARER_TOKEN") and not values.get("SCIM_BEARER_TOKEN"):
        values["SCIM_BEARER_TOKEN"] = secrets.token_urlsafe(32)
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return {str(k): str(v) for k, v in values.items()}


def probe(service: Service, timeout: float = 2.0) -> bool | None:
    """None when nothing listens on the service's port; True when Azurite's ``service``
    answers there (an unsigned request gets Azurite's 403 with its ``Server`` header and
    a request id); False for any other listener."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=timeout)
    try:
        connection.request("GET", service.probe_path)
        response = connection.getresponse()
        response.read()
    except ConnectionRefusedError:
        return None
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    server = response.getheader("Server") or ""
    return server.startswith(service.server_header) and bool(
        response.getheader("x-ms-request-id"))


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    """The first stop signal or Ctrl-C stops everything; later ones wait for that."""
    for other in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(other, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stop(signal.Signals(signum).name)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGINT, on which Azurite saves its data and exits; SIGKILL after 20 seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def azurite(services: list[Service], location: Path) -> Iterator[None]:
    """Each of ``services`` running until the block ends: one already answering as that
    Azurite service is reused, anything else on its port is refused before anything
    starts; the ones started here are stopped at the end."""
    found = {service: probe(service) for service in services}
    for service, state in found.items():
        if state is False:
            raise NotAzurite(
                f"Port {service.port} on 127.0.0.1 is taken by something that is not Azurite's "
                f"{service.name} service. Stop it, or run with "
                f"--{service.name}-port set to a free port.")
    for service in services:
        if found[service] is None and not service.binary.exists():
            raise SystemExit(f"{service.binary} is missing; run `npm ci` and try again.")
    location.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        for service in services:
            if found[service]:
                print(f"Using the Azurite {service.name} service already on "
                      f"127.0.0.1:{service.port}.")
                continue
            # Its own session: a terminal's Ctrl-C or a signal to this process group reaches
            # this process, which then stops Azurite with SIGINT so that it saves its data.
            process = subprocess.Popen(service.command(location), cwd=location,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            started.append(process)
            deadline = time.monotonic() + 30
            while not probe(service, timeout=0.5):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"Azurite's {service.name} service did not start on "
                                     f"127.0.0.1:{service.port}; run `npm ci` and try again.")
                time.sleep(0.1)
        yield
    finally:
        for process in reversed(started):
            stop_process(process)


def development_connection(table_port: int, queue_port: int) -> str:
    """Azurite's well-known account on the given ports, as a connection string."""
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"TableEndpoint=http://127.0.0.1:{table_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{queue_port}/{ACCOUNT};")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    parser.add_argument("--table-port", type=int, default=TABLE_PORT,
                        help="Azurite's table service port (default %(default)s)")
    parser.add_argument("--queue-port", type=int, default=QUEUE_PORT,
                        help="Azurite's queue service port (default %(default)s)")
    parser.add_argument("--data", type=Path, default=DATA,
                        help="where Azurite keeps its data (default .azurite/)")
    parser.add_argument("--settings", type=Path, default=SETTINGS,
                        help="the settings file (default local.settings.json)")
    args = parser.parse_args(argv)
    values = ensure_settings(args.settings)
    for key, value in values.items():
        os.environ.setdefault(key, value)
    store = os.environ.get("SCIM_STORE") or "tables"
    services = [Service("table", args.table_port), Service("queue", args.queue_port)]
    if (os.environ.get("SCIM_TABLES_CONNECTION", "").strip().lower()
            == "usedevelopmentstorage=true"
            and (args.table_port, args.queue_port) != (TABLE_PORT, QUEUE_PORT)):
        os.environ["SCIM_TABLES_CONNECTION"] = development_connection(args.table_port,
                                                                      args.queue_port)
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, _on_stop_signal)
    sys.path.insert(0, str(ROOT))
    import devhost

    try:
        with azurite(services, args.data) if store == "tables" else contextlib.nullcontext():
            server = devhost.serve(args.host, args.port)
            try:
                token = os.environ["SCIM_BEARER_TOKEN"]
                prefix = devhost.route_prefix().strip("/")
                root = "/".join(p for p in (prefix, "scim/v2") if p)
                print(f"Tenant URL:    http://{args.host}:{server.server_address[1]}/{root}")
                print(f"Secret Token:  {token}")
                print("Store:         " + (
                    f"Azurite, tables on 127.0.0.1:{args.table_port}, queues on "
                    f"127.0.0.1:{args.queue_port} (data in {args.data})" if store == "tables"
                    else "in memory"))
                import function_app  # a fresh management API key each run, shown once

                key = function_app.get_manage_api().keys.create("manage",
                                                                description="make run")[1]
                print(f"Management:    http://{args.host}:{server.server_address[1]}"
                      f"/manage/v1  (API key: {key})")
                print("Press Ctrl+C to stop.", flush=True)
                server.serve_forever()
            finally:
                server.server_close()
    except (KeyboardInterrupt, Stop):
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
