"""One activity entry: what a SCIM request of a tenant asked and what it was answered,
built off the request path from a ``Seen`` request, with secrets redacted."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "AUTH_FAILURE",
    "OK",
    "SCIM_ERROR",
    "SERVER_ERROR",
    "Entry",
    "Seen",
    "build_entry",
    "redact",
    "route_template",
    "status_class",
]

OK = "ok"
SCIM_ERROR = "scim_error"
SERVER_ERROR = "server_error"
AUTH_FAILURE = "auth_failure"

MAX_BODY_CHARS = 8_000
"""The longest redacted failure body kept in an entry (the rest is cut, and says so)."""
MAX_VALUE_CHARS = 512
REDACTED = "[redacted]"
REQUEST_ID_HEADERS = ("client-request-id", "x-ms-client-request-id", "request-id",
                      "x-request-id")
"""Entra sends ``client-request-id``; the others are what other SCIM clients send."""

_SENSITIVE = re.compile(r"pass(word|wd|phrase)?|secret|token|authori[sz]ation|api[-_]?key|"
                        r"credential|private[-_]?key|pin$|otp|cookie", re.IGNORECASE)
_FILTER_NAME = re.compile(r'\b(userName|externalId|displayName|id)\s+eq\s+"((?:[^"\\]|\\.)*)"',
                          re.IGNORECASE)
_FIELD = re.compile(r'"(userName|externalId|displayName|id)"\s*:\s*"((?:[^"\\]|\\.)*)"')
_NAMES = ("userName", "externalId", "displayName")


@dataclass(frozen=True)
class Seen:
    """What ``ScimApi.handle`` hands the recorder, without copying or parsing anything:
    the request's parts by reference and the response's. ``token`` is the bearer the
    request presented, kept only to find and redact it in a body; never stored."""

    at: float
    tenant: str
    method: str
    path: str
    filter: str | None
    status: int
    duration_ms: float
    user_agent: str | None
    request_id: str | None
    request_body: bytes
    response_body: bytes
    auth_failure: str | None = None
    token: str | None = None
    endpoints: frozenset[str] = frozenset()
    route: str | None = None
    """The route template when the caller knows it (a management call); else worked out."""
    token_version: str | None = None
    """The version of the tenant's token secret the request's token matched."""


@dataclass(frozen=True)
class Entry:
    """One recorded request. ``time`` is ISO 8601 UTC with milliseconds; ``body`` is the
    redacted request body of a failure (None for successes and when bodies are off)."""

    time: str
    method: str
    route: str
    status: int
    outcome: str
    duration_ms: float
    resource_type: str | None = None
    resource_id: str | None = None
    user_name: str | None = None
    external_id: str | None = None
    display_name: str | None = None
    scim_type: str | None = None
    detail: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    body: str | None = None
    id: str = ""

    @property
    def operation(self) -> str:
        """``METHOD /route`` (``POST /Users``), what aggregates are kept by."""
        return f"{self.method} {self.route}"

    @property
    def from_scim_client(self) -> bool:
        """Whether the SCIM client (Entra) sent it, not the vendor's management API."""
        return is_scim_operation(self.operation)

    @property
    def names(self) -> list[str]:
        """The distinct values a name search finds this entry by: userName, externalId,
        resource id, and displayName where there is no userName (a group's name)."""
        found: dict[str, str] = {}
        shown = None if self.user_name else self.display_name
        for value in (self.user_name, self.external_id, shown, self.resource_id):
            if value:
                found.setdefault(value.casefold(), value)
        return list(found.values())

    def document(self) -> dict[str, Any]:
        """The entry as JSON (camelCase names, absent values left out)."""
        raw = asdict(self)
        out: dict[str, Any] = {}
        for name, value in raw.items():
            if value is None or (name == "id" and not value):
                continue
            head, *rest = name.split("_")
            out[head + "".join(part.title() for part in rest)] = value
        out["operation"] = self.operation
        return out

    def properties(self) -> dict[str, Any]:
        """The entry as stored properties (absent values left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None and f.name != "id"}

    @classmethod
    def from_properties(cls, props: dict[str, Any], entry_id: str) -> Entry:
        """The entry stored as ``props``."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in props.items() if k in known and k != "id"}
        values["status"] = int(values.get("status", 0))
        values["duration_ms"] = float(values.get("duration_ms", 0.0))
        return cls(id=entry_id, **values)


def status_class(status: int) -> str:
    """``2xx``, ``3xx``, ``4xx`` or ``5xx``."""
    return f"{status // 100}xx"


def iso_time(at: float) -> str:
    """``at`` (seconds since the epoch) as ISO 8601 UTC with milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def route_template(path: str, endpoints: frozenset[str]) -> tuple[str, str | None, str | None]:
    """The route template of a SCIM path (``/Users/{id}``), its resource endpoint and the
    id it names. ``endpoints`` are the lower-cased resource endpoints (``users``)."""
    segments = [s for s in path.split("/") if s]
    if not segments:
        return "/", None, None
    head = segments[0]
    if head.lower() == ".search" and len(segments) == 1:
        return "/.search", None, None
    if head.lower() not in endpoints:
        return "/{other}", None, None
    name = "/" + head
    if len(segments) == 1:
        return name, head, None
    if len(segments) == 2 and segments[1] == ".search":
        return name + "/.search", head, None
    if len(segments) == 2:
        return name + "/{id}", head, segments[1][:MAX_VALUE_CHARS]
    return name + "/{other}", head, None


def redact(document: Any, token: str | None = None) -> Any:
    """``document`` with every sensitive attribute's value (password, tokens, secrets, keys,
    and a PATCH operation's ``value`` whose ``path`` names one) replaced by
    ``[redacted]``, and ``token`` wherever it occurs in a string."""
    if isinstance(document, dict):
        out: dict[str, Any] = {}
        path = document.get("path")
        sensitive_path = isinstance(path, str) and _SENSITIVE.search(path) is not None
        for key, value in document.items():
            if _SENSITIVE.search(str(key)) or (sensitive_path and str(key).lower() == "value"):
                out[key] = REDACTED
            else:
                out[key] = redact(value, token)
        return out
    if isinstance(document, list):
        return [redact(item, token) for item in document]
    if isinstance(document, str) and token and token in document:
        return document.replace(token, REDACTED)
    return document


def _parse(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _unescape(raw: str) -> str:
    try:
        value = json.loads(f'"{raw}"')
        return value if isinstance(value, str) else raw
    except ValueError:
        return raw


def _names(document: Any, body: bytes) -> dict[str, str]:
    """userName, externalId, displayName and id of a resource document (or, when the body
    was cut short and is not JSON, found by their first appearance in its text)."""
    found: dict[str, str] = {}
    if isinstance(document, dict):
        for name in (*_NAMES, "id"):
            value = document.get(name)
            if isinstance(value, str) and value:
                found[name] = value[:MAX_VALUE_CHARS]
        return found
    if document is None and body:
        text = body.decode("utf-8", errors="replace")
        for match in _FIELD.finditer(text):
            found.setdefault(match.group(1), _unescape(match.group(2))[:MAX_VALUE_CHARS])
    return found


def _body_text(document: Any, raw: bytes, token: str | None) -> str:
    if document is None:
        return f"[{len(raw)} bytes, not JSON: not kept]" if raw else ""
    text = json.dumps(redact(document, token), ensure_ascii=False, separators=(",", ":"))
    if token and token in text:  # e.g. split across an escape: never keep it
        return "[body held the bearer token: not kept]"
    if len(text) > MAX_BODY_CHARS:
        return text[:MAX_BODY_CHARS] + f"... [cut at {MAX_BODY_CHARS} characters]"
    return text


def build_entry(seen: Seen, *, bodies: bool = True, entry_id: str = "") -> Entry:
    """The entry of ``seen``. An auth failure keeps nothing the request sent beyond its
    method and route template; a failure keeps its redacted body when ``bodies``."""
    route, endpoint, resource_id = (seen.route, None, None) if seen.route else \
        route_template(seen.path, seen.endpoints)
    base: dict[str, Any] = {"time": iso_time(seen.at), "method": seen.method, "route": route,
                            "status": seen.status, "duration_ms": round(seen.duration_ms, 2),
                            "resource_type": endpoint, "id": entry_id}
    if seen.auth_failure is not None:
        return Entry(outcome=AUTH_FAILURE, detail=seen.auth_failure, **base)
    response = _parse(seen.response_body) if seen.status != 204 else None
    failed = seen.status >= 400
    names: dict[str, str] = {}
    if seen.filter:
        for match in _FILTER_NAME.finditer(seen.filter):
            key = "id" if match.group(1).lower() == "id" else next(
                n for n in _NAMES if n.lower() == match.group(1).lower())
            names.setdefault(key, _unescape(match.group(2))[:MAX_VALUE_CHARS])
    request = _parse(seen.request_body)
    for key, value in _names(request, seen.request_body).items():
        if key != "id":
            names.setdefault(key, value)
    if (not failed and seen.method != "GET") or route.endswith("{id}"):
        for key, value in _names(response, seen.response_body).items():
            names.setdefault(key, value)
    scim_type = detail = None
    if failed and isinstance(response, dict):
        scim_type = response.get("scimType") if isinstance(response.get("scimType"), str) \
            else None
        detail = str(response.get("detail", ""))[:MAX_BODY_CHARS] or None
    outcome = SERVER_ERROR if seen.status >= 500 else SCIM_ERROR if failed else OK
    body = _body_text(request, seen.request_body, seen.token) if failed and bodies else None
    return Entry(
        outcome=outcome, resource_id=resource_id or names.get("id"),
        user_name=names.get("userName"), external_id=names.get("externalId"),
        display_name=names.get("displayName"), scim_type=scim_type, detail=detail,
        user_agent=(seen.user_agent or "")[:MAX_VALUE_CHARS] or None,
        request_id=(seen.request_id or "")[:MAX_VALUE_CHARS] or None,
        body=body or None, **base)


NOT_SCIM_ROUTES = ("/manage/", "/setup/", "/admin/")
"""Routes of what else a tenant's log records: the vendor's management calls, the setup
page's link exchanges and the admin command's setup-link changes."""


def is_scim_operation(operation: str) -> bool:
    """Whether an operation (``POST /Users``) is a SCIM request rather than a management
    call, a setup link's use or an admin command naming the tenant
    (``POST /manage/v1/tenants/{tenant}/setup-links``, ``GET /setup/{link}``)."""
    return not operation.partition(" ")[2].startswith(NOT_SCIM_ROUTES)
