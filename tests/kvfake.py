"""A local HTTPS fake of the Key Vault secrets data plane, for the real ``SecretClient``.

What it implements is what ``azure-keyvault-secrets`` calls, with the real service's shapes:

- the challenge flow: a request without a valid ``Authorization`` gets 401 and a
  ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"`` challenge;
- ``PUT /secrets/{name}`` (new version), ``GET /secrets/{name}[/{version}]``,
  ``GET /secrets/{name}/versions`` (paged with ``nextLink``), ``PATCH /secrets/{name}/{version}``;
- the service's attribute JSON (``enabled``, ``created``, ``updated``, ``exp``, ``nbf``,
  ``recoveryLevel`` as Unix seconds) and ``{"error": {"code", "message", "innererror"}}``.

Like the real service it refuses to return a *disabled* version's value (403 ``Forbidden`` /
``SecretDisabled``) but returns expired and not-yet-valid values: ``exp`` and ``nbf`` are advisory
for secrets, so the consumer must check them. Listing the versions of a secret that does not exist
returns an empty list (an assumption about the service; the code under test treats a 404 alike).

Fault knobs: ``fail_status`` (answer every request with that status), ``close_connections``
(drop every connection without an answer), ``delay_seconds`` (wait before answering), each
limited to the routes in ``fault_routes`` when that is set, and ``auth_mode`` (``"ok"``,
``"reject"`` every access token, ``"forbidden"`` = no RBAC role).
``counts`` counts every request by route (``set``, ``get``, ``get_latest``, ``list_versions``,
``update``, ``other``); unauthenticated requests answered with a challenge count as ``challenge``.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError
from azure.keyvault.secrets import SecretClient

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ACCESS_TOKEN = "kvfake-access-token"
RECOVERY_LEVEL = "Recoverable+Purgeable"
_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", '
    'resource="https://vault.azure.net"'
)


class FakeClock:
    """A settable Unix-seconds clock shared by the fake vault and the code under test."""

    def __init__(self, start: float | None = None) -> None:
        self.now = float(int(time.time()) if start is None else start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeCredential:
    """A stand-in for an azure-identity credential: hands out a fixed access token, or raises
    ``error`` (by default what ``AzureCliCredential`` raises when nobody ran ``az login``)."""

    def __init__(
        self, token: str = ACCESS_TOKEN, *, fail: bool = False, error: Exception | None = None
    ) -> None:
        self.token = token
        self.error = error or (
            ClientAuthenticationError("Please run 'az login' to set up an account.")
            if fail
            else None
        )
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        access = self.get_token(*scopes)
        return AccessTokenInfo(access.token, access.expires_on)


@dataclass
class Version:
    """One stored secret version."""

    version: str
    value: str
    created: int
    updated: int
    enabled: bool = True
    exp: int | None = None
    nbf: int | None = None
    content_type: str | None = None
    tags: dict[str, str] | None = None


@dataclass
class _Secret:
    versions: list[Version] = field(default_factory=list)

    def latest(self) -> Version:
        return self.versions[-1]


@functools.cache
def _tls() -> tuple[trustme.CA, trustme.LeafCert]:
    """One test CA and server certificate per process: key generation is the slow part."""
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost")


class FakeKeyVault:
    """A running fake vault at ``url`` (``https://127.0.0.1:<port>``); use as a context manager."""

    def __init__(self, *, clock: Callable[[], float] = time.time, page_size: int = 2) -> None:
        self.clock = clock
        self.page_size = page_size
        self.fail_status: int | None = None
        self.close_connections = False
        self.delay_seconds = 0.0
        self.auth_mode = "ok"
        self.fault_routes: set[str] | None = None  # None: faults hit every route
        self.counts: Counter[str] = Counter()
        self._secrets: dict[str, _Secret] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._dir = Path(tempfile.mkdtemp(prefix="kvfake-"))
        ca, server_cert = _tls()
        self.ca_pem_path = str(self._dir / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_pem_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_cert.configure_cert(context)
        self._server = _Server(("127.0.0.1", 0), _Handler, self, context)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeKeyVault:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeKeyVault:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """What a ``SecretClient`` needs to talk to this fake (plus fast failure for tests)."""
        kwargs: dict[str, Any] = {
            "verify_challenge_resource": False,
            "connection_verify": self.ca_pem_path,
            "retry_total": 0,
            "connection_timeout": 2,
            "read_timeout": 2,
        }
        kwargs.update(overrides)
        return kwargs

    def client(self, credential: Any = None, **overrides: Any) -> SecretClient:
        return SecretClient(
            self.url, credential or FakeCredential(), **self.client_kwargs(**overrides)
        )

    # direct state access for tests -----------------------------------------------------------

    def add_version(
        self,
        name: str,
        value: str,
        *,
        enabled: bool = True,
        exp: float | None = None,
        nbf: float | None = None,
        created: float | None = None,
    ) -> str:
        """Store a new version without HTTP; returns its version id."""
        with self._lock:
            return self._add(
                name, value, enabled=enabled, exp=exp, nbf=nbf, created=created
            ).version

    def versions(self, name: str) -> list[Version]:
        """A copy of the versions of ``name``, oldest first."""
        with self._lock:
            secret = self._secrets.get(name)
            return [Version(**vars(v)) for v in secret.versions] if secret else []

    def set_enabled(self, name: str, version: str, enabled: bool) -> None:
        with self._lock:
            self._find(name, version).enabled = enabled

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()

    def count(self, route: str) -> int:
        with self._lock:
            return self.counts[route]

    # internals -----------------------------------------------------------------------------

    def _add(
        self,
        name: str,
        value: str,
        *,
        enabled: bool = True,
        exp: float | None = None,
        nbf: float | None = None,
        created: float | None = None,
        content_type: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> Version:
        now = int(self.clock() if created is None else created)
        record = Version(
            version=uuid.uuid4().hex,
            value=value,
            created=now,
            updated=now,
            enabled=enabled,
            exp=None if exp is None else int(exp),
            nbf=None if nbf is None else int(nbf),
            content_type=content_type,
            tags=tags,
        )
        self._secrets.setdefault(name, _Secret()).versions.append(record)
        return record

    def _find(self, name: str, version: str) -> Version:
        secret = self._secrets.get(name)
        if secret is None or not secret.versions:
            raise _Error(404, "SecretNotFound", _not_found(name))
        if not version:
            return secret.latest()
        for record in secret.versions:
            if record.version == version:
                return record
        raise _Error(404, "SecretNotFound", _not_found(f"{name}/{version}"))

    def _bundle(self, name: str, record: Version, *, with_value: bool) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "enabled": record.enabled,
            "created": record.created,
            "updated": record.updated,
            "recoveryLevel": RECOVERY_LEVEL,
            "recoverableDays": 90,
        }
        if record.nbf is not None:
            attributes["nbf"] = record.nbf
        if record.exp is not None:
            attributes["exp"] = record.exp
        doc: dict[str, Any] = {}
        if with_value:
            doc["value"] = record.value
        doc["id"] = f"{self.url}/secrets/{name}/{record.version}"
        doc["attributes"] = attributes
        if record.content_type is not None:
            doc["contentType"] = record.content_type
        if record.tags:
            doc["tags"] = dict(record.tags)
        return doc

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Any:
        """Route one authenticated request; returns the JSON document or raises ``_Error``."""
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2 or parts[0] != "secrets":
            raise _Error(404, "NotFound", "The requested resource was not found.")
        name = parts[1]
        if not _NAME.match(name):
            raise _Error(400, "BadParameter", "The secret name is not valid.")
        rest = parts[2:]
        with self._lock:
            if method == "PUT" and not rest:
                return self._set(name, body)
            if method == "GET" and rest == ["versions"]:
                return self._list(name, query)
            if method == "GET" and len(rest) <= 1:
                record = self._find(name, rest[0] if rest else "")
                if not record.enabled:
                    raise _Error(
                        403,
                        "Forbidden",
                        "Operation get is not allowed on a disabled secret.",
                        inner="SecretDisabled",
                    )
                return self._bundle(name, record, with_value=True)
            if method == "PATCH" and len(rest) <= 1:
                return self._update(name, rest[0] if rest else "", body)
        raise _Error(405, "BadParameter", f"The method {method} is not allowed here.")

    def _set(self, name: str, body: bytes) -> dict[str, Any]:
        doc = _json(body)
        value = doc.get("value")
        if not isinstance(value, str):
            raise _Error(400, "BadParameter", "Property 'value' is required.")
        attributes = doc.get("attributes") or {}
        record = self._add(
            name,
            value,
            enabled=attributes.get("enabled", True),
            exp=attributes.get("exp"),
            nbf=attributes.get("nbf"),
            content_type=doc.get("contentType"),
            tags=doc.get("tags"),
        )
        return self._bundle(name, record, with_value=True)

    def _update(self, name: str, version: str, body: bytes) -> dict[str, Any]:
        record = self._find(name, version)
        doc = _json(body)
        attributes = doc.get("attributes") or {}
        if "enabled" in attributes:
            record.enabled = bool(attributes["enabled"])
        if "exp" in attributes:
            record.exp = attributes["exp"]
        if "nbf" in attributes:
            record.nbf = attributes["nbf"]
        if "contentType" in doc:
            record.content_type = doc["contentType"]
        if "tags" in doc:
            record.tags = doc["tags"]
        record.updated = int(self.clock())
        return self._bundle(name, record, with_value=False)

    def _list(self, name: str, query: dict[str, list[str]]) -> dict[str, Any]:
        secret = self._secrets.get(name)
        records = secret.versions if secret else []
        size = int(query.get("maxresults", [str(self.page_size)])[0])
        start = int(query.get("$skiptoken", ["0"])[0])
        page = records[start : start + size]
        next_link = None
        if start + size < len(records):
            api_version = query.get("api-version", ["7.6"])[0]
            next_link = (
                f"{self.url}/secrets/{name}/versions?api-version={api_version}"
                f"&$skiptoken={start + size}&maxresults={size}"
            )
        return {
            "value": [self._bundle(name, r, with_value=False) for r in page],
            "nextLink": next_link,
        }


class _Error(Exception):
    def __init__(self, status: int, code: str, message: str, *, inner: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.doc: dict[str, Any] = {"error": {"code": code, "message": message}}
        if inner:
            self.doc["error"]["innererror"] = {"code": inner}


def _not_found(what: str) -> str:
    return (
        f"A secret with (name/id) {what} was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery command."
    )


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body or b"{}")
    except ValueError as exc:
        raise _Error(400, "BadParameter", "The request body is not valid JSON.") from exc
    if not isinstance(doc, dict):
        raise _Error(400, "BadParameter", "The request body must be a JSON object.")
    return doc


def _route(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or parts[0] != "secrets":
        return "other"
    rest = parts[2:]
    if method == "PUT" and not rest:
        return "set"
    if method == "GET" and rest == ["versions"]:
        return "list_versions"
    if method == "GET":
        return "get" if rest else "get_latest"
    if method == "PATCH":
        return "update"
    return "other"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        vault: FakeKeyVault,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(address, handler)
        self.vault = vault
        self.context = context

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        # The handshake runs in the handler thread, so a stuck client cannot block accept().
        return (
            self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False),
            address,
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate small writes
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.request.settimeout(10)
        self._handshake_ok = True
        try:
            self.request.do_handshake()
        except (OSError, ssl.SSLError):
            self._handshake_ok = False

    def handle(self) -> None:
        if self._handshake_ok:
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        vault = self.server.vault
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        route = _route(method, url.path)
        authorized = self.headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}"
        faulty = vault.fault_routes is None or route in vault.fault_routes
        faulted = faulty and (vault.fail_status is not None or vault.close_connections)
        with vault._lock:
            vault.counts[route if authorized or faulted else "challenge"] += 1
            vault.counts["total"] += 1
        if faulty and vault.delay_seconds and vault._stopping.wait(vault.delay_seconds):
            return
        if faulty and vault.close_connections:
            self.close_connection = True
            self.connection.close()
            return
        if faulty and vault.fail_status is not None:
            self._send_error(
                _Error(vault.fail_status, "ServiceUnavailable", "The service is unavailable.")
            )
            return
        if not authorized or vault.auth_mode == "reject":
            error = _Error(
                401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."
            )
            self._send(error.status, error.doc, extra={"WWW-Authenticate": _CHALLENGE})
            return
        if vault.auth_mode == "forbidden":
            self._send_error(
                _Error(
                    403,
                    "Forbidden",
                    "Caller is not authorized to perform action on resource.",
                    inner="ForbiddenByRbac",
                )
            )
            return
        try:
            doc = vault.handle(method, url.path, parse_qs(url.query), body)
        except _Error as error:
            self._send_error(error)
            return
        self._send(200, doc)

    def _send_error(self, error: _Error) -> None:
        self._send(error.status, error.doc)

    def _send(self, status: int, doc: Any, *, extra: dict[str, str] | None = None) -> None:
        payload = json.dumps(doc).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-keyvault-service-version", "1.9.0.0")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


def forbid_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything builds a credential that would probe the instance metadata
    address (managed identity, or the default chain that includes it)."""
    import azure.identity

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tests must inject a fake credential")

    for name in ("ManagedIdentityCredential", "DefaultAzureCredential"):
        monkeypatch.setattr(azure.identity, name, refuse)
