"""A local stand-in for the Azure Functions host: ``python -m devhost [--host] [--port]``
(docs/architecture.md, "The dev host")."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from scim_core.config import local_settings

ROOT = Path(__file__).resolve().parent
MAX_BODY = 64 * 1024 * 1024  # the real host caps request bodies too (100 MB by default)


@dataclass(frozen=True)
class Route:
    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    handler: Callable[[func.HttpRequest], func.HttpResponse]


def route_pattern(prefix: str, template: str) -> re.Pattern[str]:
    """A regex for an ASP.NET-style route template: ``{name}``, ``{name?}``,
    ``{name:constraint}`` and catch-all ``{*name}``; matched case-insensitively."""
    full = "/".join(p.strip("/") for p in (prefix, template) if p.strip("/"))
    regex = ""
    for piece in re.split(r"(\{[^}]*\})", full):
        if piece.startswith("{"):
            name = piece[1:-1].split(":")[0].rstrip("?")
            if name.startswith("*"):
                # A catch-all also matches nothing at all, slash included.
                regex = regex.removesuffix("/") + f"(?:/(?P<{name[1:]}>.*))?"
            else:
                regex += f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(piece)
    return re.compile(f"^/{regex}/?$", re.IGNORECASE)


def load_settings(root: Path = ROOT) -> None:
    """Put local.settings.json ``Values`` into the environment without overriding it."""
    for key, value in local_settings(root).items():
        os.environ.setdefault(key, value)


def route_prefix(root: Path = ROOT) -> str:
    host = json.loads((root / "host.json").read_text(encoding="utf-8"))
    prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
    return str(prefix)


def load_routes(module: str = "function_app", root: Path = ROOT) -> list[Route]:
    """The HTTP triggers the Functions app registers, as the real host would index them."""
    app = importlib.import_module(module).app
    prefix = route_prefix(root)
    routes = []
    # azure-functions 1.26 remembers the names it indexed and refuses a second
    # get_functions() on the same app; the real host indexes once per process, we re-index.
    app.functions_bindings = None
    functions = app.get_functions()
    app.functions_bindings = None
    for function in functions:
        trigger = function.get_trigger()
        if getattr(trigger, "type", None) != "httpTrigger" and not function.is_http_function():
            continue
        methods = frozenset(str(getattr(m, "value", m)).upper() for m in trigger.methods or ())
        template = trigger.route or function.get_function_name()
        routes.append(Route(function.get_function_name(), route_pattern(prefix, template),
                            methods or frozenset({"GET", "POST", "PUT", "PATCH", "DELETE",
                                                  "HEAD", "OPTIONS"}),
                            function.get_user_function()))
    return routes


class DevHostServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], routes: list[Route]) -> None:
        self.routes = routes
        super().__init__(address, _Handler)

    def find(self, path: str, method: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            match = route.pattern.match(path)
            if match and method in route.methods:
                params = {k: v for k, v in match.groupdict().items() if v is not None}
                return route, params
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DevHostServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("DEVHOST_ACCESS_LOG"):
            sys.stderr.write(f"{self.command} {self.path.split('?')[0]} -> {args[1:2]}\n")

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send(400, {}, b"")
            return
        if body is None:
            self.close_connection = True
            self._send(413, {}, b"")
            return
        parts = urlsplit(self.path)
        found = self.server.find(parts.path, self.command)
        if found is None:
            self._send(404, {}, b"")
            return
        route, params = found
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        request = func.HttpRequest(
            method=self.command,
            url=f"http://{host}{self.path}",
            headers=dict(self.headers.items()),
            params=dict(parse_qsl(parts.query, keep_blank_values=True)),
            route_params=params,
            body=body,
        )
        try:
            response = route.handler(request)
        except Exception as exc:  # the real host answers 500 for an unhandled exception
            sys.stderr.write(f"devhost: function {route.name} raised {type(exc).__name__}\n")
            self._send(500, {}, b"")
            return
        headers = dict(response.headers)
        headers.setdefault("Content-Type", f"{response.mimetype}; charset={response.charset}")
        self._send(response.status_code, headers, response.get_body() or b"")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


def serve(host: str = "127.0.0.1", port: int = 7071) -> DevHostServer:
    """A started-but-not-serving server (call ``serve_forever``); port 0 picks a free one."""
    load_settings()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return DevHostServer((host, port), load_routes())


def worker_count() -> int:
    """``FUNCTIONS_WORKER_PROCESS_COUNT``, as the host reads it: 1 to 10, else 1."""
    raw = os.environ.get("FUNCTIONS_WORKER_PROCESS_COUNT", "1").strip()
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 10 else 1


def _serve_until_stopped(server: DevHostServer) -> None:
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _run_workers(server: DevHostServer, count: int) -> None:
    """Fork ``count`` workers that accept on ``server``'s socket; stop them on SIGTERM or
    SIGINT, and stop all when one dies. The app is imported but has served nothing yet,
    so no worker inherits an open client connection."""
    workers = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            try:
                _serve_until_stopped(server)
            finally:
                os._exit(0)
        workers.append(pid)

    def stop(*_: Any) -> None:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        os.wait()
    finally:
        stop()
        for _ in workers:
            try:
                os.wait()
            except ChildProcessError:
                break
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    args = parser.parse_args(argv)
    server = serve(args.host, args.port)
    bound = server.server_address[1]
    names = ", ".join(r.name for r in server.routes)
    count = worker_count()
    workers = f" ({count} worker processes)" if count > 1 else ""
    print(f"devhost: serving {names} on http://{args.host}:{bound}{workers}", flush=True)
    if count > 1:
        _run_workers(server, count)
    else:
        _serve_until_stopped(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
