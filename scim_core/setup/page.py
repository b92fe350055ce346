"""The HTTP-neutral setup page (``/setup``): the link exchange, the static page and its
JSON calls (``/setup/api/...``), authorised by the session cookie alone. The tenant rules
are the tenant admin's, reached as the management API reaches them."""

from __future__ import annotations

import hmac
import html
import json
import logging
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from scim_core.activity.entry import is_scim_operation
from scim_core.activity.log import ActivityLog
from scim_core.http import Request, Response
from scim_core.kinds import Kind
from scim_core.manage.problems import tenant_url_or_none, translate
from scim_core.manage.rows import side_rows
from scim_core.manage.setup_links import LinkRefused, SetupLinks, SetupSession
from scim_core.operations.tenants import TenantAdmin
from scim_core.rate_limit import RateLimit
from scim_core.setup.settings import SetupSettings
from scim_core.tenants.model import DELETING

log = logging.getLogger("scim_core.setup")

ROOT = "/setup"
COOKIE = "scim_setup"
CSRF_HEADER = "X-Setup-CSRF"
CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin"}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ACTIVITY_DAYS = 3
MAX_FAILURES = 25
FAILURE_FIELDS = ("time", "operation", "status", "outcome", "detail", "scimType",
                  "userName", "externalId", "displayName")
"""What the page shows of a failure (never its body)."""
ASSETS = {"setup.css": "text/css", "setup.js": "text/javascript", "logo.svg": "image/svg+xml"}
REFUSALS = {
    "unknown": ("This setup link is not valid",
                "The link is incomplete or was never issued. Copy the whole link from the "
                "message, or ask your provider for a new one."),
    "expired": ("This setup link has expired",
                "Setup links work for a limited time. Ask your provider for a new link."),
    "used": ("This setup link was already used",
             "A setup link opens the page once, in the browser that opened it first. If "
             "that was not you, tell your provider; ask them for a new link."),
    "revoked": ("This setup link was revoked",
                "Your provider withdrew this link. Ask them for a new one."),
    "session": ("Your setup session has ended",
                "Sessions last about an hour. Ask your provider for a new setup link."),
    "busy": ("Too many attempts",
             "Too many setup links were opened in a short time. Wait a minute and reload."),
}


class SetupPage:
    """Serves ``/setup`` for the tenants of a management API's store."""

    def __init__(self, manage: Any, settings: SetupSettings | None = None, *,
                 activity: ActivityLog | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.manage = manage
        self.activity = activity
        self.settings = settings or SetupSettings()
        self.links = SetupLinks(side_rows(manage.store), clock=clock)
        self._clock = clock
        self._exchanges = RateLimit(self.settings.exchange_per_minute / 60,
                                    max(1.0, self.settings.exchange_per_minute / 3))
        self._generations: dict[str, RateLimit] = {}

    def handle(self, request: Request) -> Response:
        """The response to one request; never raises."""
        try:
            return self._dispatch(request)
        except _Refused as refused:
            return refused.response
        except Exception as failure:
            problem = translate(failure)
            if problem is not None:
                return _json(problem.status, {"error": problem.kind, "detail": problem.detail})
            log.exception("Unhandled error serving the setup page")
            return _json(500, {"error": "internal", "detail": "Internal error."})

    def _dispatch(self, request: Request) -> Response:
        method = request.method.upper()
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            _allow(method, "GET", "HEAD")
            session = self._session(request)
            if session is None:
                return refusal_page("session", 401)
            return self._index(request)
        head = parts[0]
        if head == "static" and len(parts) == 2 and parts[1] in ASSETS:
            _allow(method, "GET", "HEAD")
            data = resources.files("scim_core.setup").joinpath("static", parts[1]).read_bytes()
            return _asset(ASSETS[parts[1]], data)
        if head == "theme.css" and len(parts) == 1:
            _allow(method, "GET", "HEAD")
            return _asset("text/css", f":root{{--accent:{self.settings.accent};}}\n".encode())
        if head == "logo" and len(parts) == 1:
            _allow(method, "GET", "HEAD")
            if self.settings.logo is None:
                data = resources.files("scim_core.setup").joinpath(
                    "static", "logo.svg").read_bytes()
                return _asset("image/svg+xml", data)
            return _asset(*self.settings.logo)
        if head == "api":
            return self._api(request, method, parts[1:])
        if len(parts) == 1:
            _allow(method, "GET")
            return self._exchange(request, parts[0])
        return refusal_page("unknown", 404)

    # -- the link exchange -----------------------------------------------------------------

    def _exchange(self, request: Request, presented: str) -> Response:
        started = time.perf_counter()
        if not self._exchanges.take():
            return refusal_page("busy", 429, {"Retry-After": "60"})
        try:
            session, value = self.links.exchange(presented, self.settings.session_seconds)
        except LinkRefused as refused:
            log.info("A setup link was refused (%s)", refused.reason)
            return refusal_page(refused.reason, 404 if refused.reason == "unknown" else 410)
        path = _path(request)
        cookie = (f"{COOKIE}={value}; Path={path}; Max-Age="
                  f"{max(1, int(session.expires - self._clock()))}; HttpOnly; Secure; SameSite=Lax")
        # The tenant's activity notes the link's use, never the link or the cookie.
        self.manage.recorder.record(
            Request("GET", "/setup/{link}", request.base_url,
                    headers={"User-Agent": request.header("User-Agent") or ""}),
            Response(303, {}, b""), session.tenant, None, time.perf_counter() - started,
            route="/setup/{link}")
        return Response(303, {**SECURITY_HEADERS, **NO_STORE, "Location": path + "/",
                              "Set-Cookie": cookie}, b"")

    def _session(self, request: Request) -> SetupSession | None:
        value = _cookie(request.header("Cookie") or "", COOKIE)
        return None if value is None else self.links.session(value)

    def _index(self, request: Request) -> Response:
        template = resources.files("scim_core.setup").joinpath(
            "static", "index.html").read_text(encoding="utf-8")
        page = template.replace("{{vendor}}", html.escape(self.settings.vendor_name))
        return Response(200, {**SECURITY_HEADERS, **NO_STORE,
                              "Content-Type": "text/html; charset=utf-8"}, page.encode())

    # -- the page's API --------------------------------------------------------------------

    def _api(self, request: Request, method: str, parts: list[str]) -> Response:
        session = self._session(request)
        if session is None:
            raise _Refused(_json(401, {"error": "session", "detail": REFUSALS["session"][1]}))
        if method != "GET":
            self._check_csrf(request, session)
        tenant = session.tenant
        if parts == ["state"]:
            _allow(method, "GET")
            return _json(200, self._state(request, session))
        if parts == ["activity"]:
            _allow(method, "GET")
            return _json(200, self._activity(request, tenant))
        if parts == ["tokens"]:
            _allow(method, "POST")
            limit = self._generations.setdefault(
                tenant, RateLimit(self.settings.tokens_per_minute / 60,
                                  max(1.0, self.settings.tokens_per_minute / 2)))
            if not limit.take():
                raise _Refused(_json(429, {"error": "rate-limited", "detail":
                                           "Too many new tokens in a short time; wait a "
                                           "minute."}, {"Retry-After": "60"}))
            rotation = self._admin(request).rotate(tenant)
            log.info("Setup page: a new token version %s for tenant %s", rotation.version,
                     tenant)
            return _json(201, {"token": rotation.token, "version": rotation.version,
                               "previousValid": rotation.previous_valid,
                               "tenantUrl": rotation.tenant_url})
        if parts == ["tokens", "retire"]:
            _allow(method, "POST")
            retired = self._admin(request).retire_token(tenant)
            log.info("Setup page: %d older token version(s) of tenant %s retired",
                     retired.disabled, tenant)
            return _json(200, {"disabled": retired.disabled,
                               "keptVersion": retired.kept_version})
        if parts == ["provisioning"]:
            _allow(method, "POST")
            if not self.settings.allow_toggle:
                raise _Refused(_json(403, {"error": "forbidden", "detail": "Your provider "
                                           "manages whether provisioning is on."}))
            wanted = _json_body(request).get("enabled")
            if not isinstance(wanted, bool):
                raise _Refused(_json(400, {"error": "invalid-request",
                                           "detail": "enabled is true or false."}))
            admin = self._admin(request)
            found = admin.enable(tenant) if wanted else admin.disable(tenant)
            self.manage.tenants.forget(tenant)
            return _json(200, {"enabled": found.state == "enabled"})
        if parts == ["signout"]:
            _allow(method, "POST")
            self.links.end(_cookie(request.header("Cookie") or "", COOKIE) or "")
            return _json(200, {"signedOut": True},
                         {"Set-Cookie": f"{COOKIE}=; Path={_path(request)}; Max-Age=0; "
                                        "HttpOnly; Secure; SameSite=Lax"})
        raise _Refused(_json(404, {"error": "not-found", "detail": "No such call."}))

    def _check_csrf(self, request: Request, session: SetupSession) -> None:
        """A state change carries the session's CSRF token and comes from this site."""
        origin = request.header("Origin") or ""
        site = urlsplit(request.base_url)
        if origin.rstrip("/") != f"{site.scheme}://{site.netloc}" or not hmac.compare_digest(
                (request.header(CSRF_HEADER) or "").encode(), session.csrf.encode()):
            log.warning("Setup page: a state change without a valid CSRF token or Origin "
                        "was refused (tenant %s)", session.tenant)
            raise _Refused(_json(403, {"error": "csrf", "detail": "Reload the page and try "
                                       "again."}))

    def _admin(self, request: Request) -> TenantAdmin:
        site = request.base_url.removesuffix(ROOT).rstrip("/")
        return TenantAdmin(self.manage.store, self.manage.secrets, self.manage.settings,
                           local_base_url=site + "/scim/v2")

    def _activity(self, request: Request, tenant: str) -> dict[str, Any]:
        """The tenant's connection health, requests per hour by outcome over the last
        ``ACTIVITY_DAYS`` and its recent failures (naming ``?name=`` when given)."""
        if self.activity is None:
            return {"enabled": False}
        now = self._clock()
        hours: dict[str, dict[str, int]] = {}
        for minute in self.activity.minutes(tenant, since=now - ACTIVITY_DAYS * 86400.0,
                                            until=now):
            if not is_scim_operation(str(minute["operation"])):
                continue  # the customer's chart is their SCIM client's traffic
            slot = hours.setdefault(str(minute["minute"])[:13] + ":00Z",
                                    {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0})
            for key in slot:
                slot[key] += int(minute.get(key) or 0)
        name = " ".join((request.param("name") or "").split())[:200] or None
        failures = [entry for status in ("4xx", "5xx") for entry in self.activity.search(
            tenant, status=status, name=name, limit=MAX_FAILURES).entries
            if entry.from_scim_client]
        failures.sort(key=lambda entry: entry.time, reverse=True)
        return {"enabled": True, "health": self.activity.health(tenant),
                "hours": [{"hour": hour, **counts} for hour, counts in sorted(hours.items())],
                "failures": [{key: value for key, value in entry.document().items()
                              if key in FAILURE_FIELDS} for entry in failures[:MAX_FAILURES]],
                "name": name}

    def _state(self, request: Request, session: SetupSession) -> dict[str, Any]:
        admin = self._admin(request)
        tenant = admin.show(session.tenant)
        if tenant.state == DELETING:
            raise _Refused(_json(404, {"error": "not-found", "detail": "This tenant is being "
                                       "deleted."}))
        url = tenant_url_or_none(admin, tenant.id)
        scoped = self.manage.store.tenant(tenant.id)
        return {
            "vendor": self.settings.vendor_name, "csrf": session.csrf,
            "sessionExpires": session.expires,
            "tenant": {"id": tenant.id, "name": tenant.name,
                       "enabled": tenant.state == "enabled"},
            "tenantUrl": url, "allowToggle": self.settings.allow_toggle,
            "counts": {"users": scoped.count(Kind.USER), "groups": scoped.count(Kind.GROUP)},
            "tokens": self.manage.token_versions(tenant.id),
        }


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _Refused(Response(405, {**SECURITY_HEADERS, "Allow": ", ".join(allowed)}, b""))


def _path(request: Request) -> str:
    """The page's path on this site (``/setup``, after any route prefix)."""
    return urlsplit(request.base_url).path.rstrip("/") or ROOT


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or len(request.body) > 4096:
        raise _Refused(_json(400, {"error": "invalid-request", "detail": "Send a JSON object."}))
    return body


def _json(status: int, document: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, {**SECURITY_HEADERS, **NO_STORE,
                             "Content-Type": "application/json", **(headers or {})},
                    json.dumps(document, separators=(",", ":")).encode())


def _asset(media_type: str, data: bytes) -> Response:
    return Response(200, {**SECURITY_HEADERS, "Content-Type": media_type,
                          "Cache-Control": "public, max-age=300"}, data)


def refusal_page(reason: str, status: int, headers: Mapping[str, str] | None = None
                 ) -> Response:
    """A plain HTML page saying why the page cannot open (no stack trace, no link value)."""
    title, detail = REFUSALS[reason]
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta '
            f'name="viewport" content="width=device-width, initial-scale=1"><title>'
            f'{html.escape(title)}</title><link rel="stylesheet" href="{ROOT}/static/setup.css">'
            f'</head><body><main class="refusal" id="main"><h1>{html.escape(title)}</h1><p>'
            f'{html.escape(detail)}</p></main></body></html>')
    return Response(status, {**SECURITY_HEADERS, **NO_STORE,
                             "Content-Type": "text/html; charset=utf-8", **(headers or {})},
                    body.encode())
