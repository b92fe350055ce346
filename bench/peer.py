"""The reference peer: scim2-server's WSGI application on its in-memory storage.

In process it is called through its WSGI interface (``app(environ, start_response)``);
over HTTP it runs in a child process (``python -m bench.peer``) behind a small threaded
HTTP/1.1 keep-alive server built like the dev host, so both systems get the same transport.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from bench.http_load import HttpCaller
from bench.runner import Caller
from bench.systems import IN_PROCESS, PEER, TOKEN, ServerProcess, Target, child_env
from bench.workloads import group_name, user_body, user_name

WsgiApp = Any


def available() -> bool:
    try:
        import scim2_server  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    from importlib.metadata import version as installed

    return installed("scim2-server")


def application(token: str = TOKEN) -> WsgiApp:
    """scim2-server's own test-server application: default schemas, bearer token check."""
    from scim2_server.memory import InMemoryStorage
    from scim2_server.testserver.application import BearerTokenApplication
    from scim2_server.utils import load_default_provider

    return BearerTokenApplication(InMemoryStorage(), load_default_provider(),
                                  bearer_tokens=[token])


def wsgi_caller(app: WsgiApp, token: str = TOKEN) -> Caller:
    """Calls the WSGI application directly, with the environ a server would build."""
    base = {"SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "SCRIPT_NAME": "", "wsgi.url_scheme": "http", "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Bearer {token}", "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
            "wsgi.version": (1, 0)}

    def call(method: str, path: str, query: Mapping[str, str] | None = None,
             body: bytes | None = None) -> tuple[int, bytes]:
        environ = dict(base)
        environ["REQUEST_METHOD"] = method
        environ["PATH_INFO"] = "/v2" + path
        environ["QUERY_STRING"] = urlencode(query, quote_via=quote) if query else ""
        environ["wsgi.input"] = io.BytesIO(body or b"")
        if body is not None:
            environ["CONTENT_TYPE"] = "application/scim+json"
            environ["CONTENT_LENGTH"] = str(len(body))
        status: list[str] = []
        chunks = app(environ, lambda s, _h, _e=None: status.append(s))
        return int(status[0][:3]), b"".join(chunks)

    return call


def in_process(token: str = TOKEN) -> Target:
    """The WSGI application called in this process; seeding goes straight to its storage."""
    app = application(token)
    return Target(PEER, "memory", IN_PROCESS, lambda: wsgi_caller(app, token),
                  seed_users=lambda tag, first, last: seed_users(app, tag, first, last),
                  seed_group=lambda tag, n, members: seed_group(app, tag, n, members))


def http(token: str = TOKEN) -> Target:
    """scim2-server in a child process behind the keep-alive server below."""
    server = ServerProcess([sys.executable, "-m", "bench.peer", "--port", "0"],
                           child_env({"BENCH_PEER_TOKEN": token}))
    target = Target(PEER, "memory", "http", lambda: HttpCaller(server.port, "/v2", token))
    target.closers.append(server.stop)
    target.server_pid = server.process.pid
    return target


# -- seeding straight into the storage (set-up only, never measured) --------------------------


def seed_users(app: WsgiApp, tag: str, first: int, last: int) -> list[tuple[str, str]]:
    """Users stored through scim2-server's storage API, skipping request handling: about
    five times faster than POSTs, which matters for 20,000 users. The documents are the
    POST bodies the measured requests use."""
    storage, service = app.storage, app.service
    resource_type = service.get_resource_type("User")
    model = service.get_model(resource_type)
    made = []
    for n in range(first, last):
        document = json.loads(user_body(tag, n))
        document.pop("meta", None)
        stored = storage.create(resource_type, model.model_validate(document))
        made.append((str(stored.id), user_name(tag, n)))
    return made


def seed_group(app: WsgiApp, tag: str, n: int, members: Sequence[str]) -> str:
    """A group stored with its members in one write (scim2-server keeps them inline)."""
    storage, service = app.storage, app.service
    resource_type = service.get_resource_type("Group")
    model = service.get_model(resource_type)
    document = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": group_name(tag, n),
                "members": [{"value": m, "type": "User"} for m in members]}
    return str(storage.create(resource_type, model.model_validate(document)).id)


# -- the HTTP server ---------------------------------------------------------------------------


class _WsgiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: WsgiServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command, "SCRIPT_NAME": "", "PATH_INFO": parts.path,
            "QUERY_STRING": parts.query, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]), "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False,
            "wsgi.run_once": False, "CONTENT_LENGTH": str(length),
        }
        if self.headers.get("Content-Type"):
            environ["CONTENT_TYPE"] = self.headers["Content-Type"]
        for key, value in self.headers.items():
            name = "HTTP_" + key.upper().replace("-", "_")
            if name not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[name] = value
        started: list[Any] = []
        chunks: Iterable[bytes] = self.server.app(
            environ, lambda status, headers, _exc=None: started.extend((status, headers)))
        payload = b"".join(chunks)
        status, headers = started
        self.send_response(int(status[:3]), status[4:])
        for key, value in headers:
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class WsgiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: WsgiApp) -> None:
        self.app = app
        super().__init__(address, _WsgiHandler)


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = WsgiServer(("127.0.0.1", args.port),
                        application(os.environ.get("BENCH_PEER_TOKEN", TOKEN)))
    print(f"bench.peer: scim2-server on http://127.0.0.1:{server.server_address[1]}/v2",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
