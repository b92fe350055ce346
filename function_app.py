"""Azure Functions entry point (v2 model): triggers that translate to and from the core's
neutral requests, no SCIM logic (docs/architecture.md, "The Functions entry point")."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from scim_core import Request, Response, ScimApi, api_from_environment
from scim_core.operations.retention import DEFAULT_BUDGET_SECONDS, RetentionReport, trim_feeds

SCIM_ROOT = "scim/v2"
MANAGE_ROOT = "manage/v1"
SETUP_ROOT = "setup"
TENANT_ROOT = "tenants"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RETENTION_SCHEDULE = "0 17 3 * * *"
"""Events retention runs daily at 03:17 UTC unless ``SCIM_EVENTS_RETENTION_SCHEDULE`` says
otherwise (an NCRONTAB expression with seconds, as timer triggers take)."""
ROOT = Path(__file__).resolve().parent
_NCRONTAB = re.compile(r"[0-9A-Za-z*/,?-]+(?: [0-9A-Za-z*/,?-]+){5}")

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_api: ScimApi | None = None
_api_lock = threading.Lock()
_manage: Any = None
_setup: Any = None


def get_api() -> ScimApi:
    """The process-wide API, built from the app settings on first use."""
    global _api
    if _api is None:
        with _api_lock:
            if _api is None:
                _api = api_from_environment()
    return _api


def reset_api(api: ScimApi | None = None) -> None:
    """Replace the process-wide API (tests and the dev host's reload)."""
    global _api, _manage, _setup
    with _api_lock:
        _api = api
        _manage = None
        _setup = None


def retention_schedule(env: Mapping[str, str] | None = None) -> str:
    """The retention timer's schedule: ``SCIM_EVENTS_RETENTION_SCHEDULE``, or the daily
    default when it is unset or not six NCRONTAB fields (logged: the HTTP triggers must
    still load)."""
    settings = os.environ if env is None else env
    raw = " ".join(settings.get("SCIM_EVENTS_RETENTION_SCHEDULE", "").split())
    if not raw:
        return RETENTION_SCHEDULE
    if not _NCRONTAB.fullmatch(raw):
        logging.getLogger("scim_core").error(
            "SCIM_EVENTS_RETENTION_SCHEDULE %r is not six NCRONTAB fields (second minute hour "
            "day month weekday); using %r", raw[:100], RETENTION_SCHEDULE)
        return RETENTION_SCHEDULE
    return raw


def retention_budget(root: Path = ROOT) -> float:
    """Seconds a retention run may spend: three quarters of host.json's ``functionTimeout``
    (the host stops a run at that limit; the margin covers the step under way), else
    ``DEFAULT_BUDGET_SECONDS``."""
    try:
        host = json.loads((root / "host.json").read_text(encoding="utf-8"))
        hours, minutes, seconds = (float(part) for part in
                                   str(host["functionTimeout"]).split(":"))
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_BUDGET_SECONDS
    limit = hours * 3600 + minutes * 60 + seconds
    return 0.75 * limit if limit > 0 else DEFAULT_BUDGET_SECONDS


def base_url(req: func.HttpRequest, configured: str = "", tenant: str | None = None) -> str:
    """The absolute SCIM root of a request: ``https://host/scim/v2``, or for a tenant
    ``https://host/tenants/{tenant}/scim/v2``.

    ``configured`` (the ``SCIM_BASE_URL`` setting, the default tenant's root) wins when set
    (a custom domain behind a proxy); otherwise the root is cut from the request URL at
    the SCIM root, keeping any routePrefix.
    """
    root = "/" + (f"{TENANT_ROOT}/{tenant}/" if tenant else "") + SCIM_ROOT
    if configured:
        site = configured[:-len(SCIM_ROOT) - 1] if configured.lower().endswith(
            "/" + SCIM_ROOT) else configured
        return site + root
    parts = urlsplit(req.url)
    path = parts.path
    cut = path.lower().find(root.lower())
    prefix = path[:cut] if cut >= 0 else path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{prefix}{root if cut >= 0 else ''}"


def to_request(req: func.HttpRequest, configured_base_url: str = "") -> Request:
    """The neutral request for a Functions request (of either SCIM route)."""
    tenant = req.route_params.get("tenant")
    return Request(
        method=req.method,
        path="/" + (req.route_params.get("path") or ""),
        base_url=base_url(req, configured_base_url, tenant),
        query=dict(req.params),
        headers=dict(req.headers),
        body=req.get_body() or b"",
        tenant=tenant,
    )


def to_http_response(response: Response) -> func.HttpResponse:
    headers = dict(response.headers)
    content_type = headers.pop("Content-Type", None)
    return func.HttpResponse(
        body=response.body,
        status_code=response.status,
        headers=headers,
        mimetype=content_type or "application/scim+json",
        charset="utf-8",
    )


@app.route(route=SCIM_ROOT + "/{*path}", methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def scim(req: func.HttpRequest) -> func.HttpResponse:
    """Every SCIM route of the default tenant: /Users, /Groups, /Schemas, /ResourceTypes,
    /ServiceProviderConfig."""
    return serve(req)


@app.route(route=TENANT_ROOT + "/{tenant}/" + SCIM_ROOT + "/{*path}", methods=METHODS,
           auth_level=func.AuthLevel.ANONYMOUS)
def tenant_scim(req: func.HttpRequest) -> func.HttpResponse:
    """Every SCIM route of one tenant, at /tenants/{tenant}/scim/v2."""
    return serve(req)


def serve(req: func.HttpRequest) -> func.HttpResponse:
    """The core's answer to a request of either route."""
    try:
        api = get_api()
        return to_http_response(api.handle(to_request(req, api.settings.base_url)))
    except Exception:
        # Start-up failures (bad settings) land here; the core handles everything else.
        logging.getLogger("scim_core").exception("The SCIM API could not serve the request")
        return func.HttpResponse(
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"503",'
            b'"detail":"The service is not configured correctly; see the function logs."}',
            status_code=503, headers={"Retry-After": "60"}, mimetype="application/scim+json")


def get_manage_api() -> Any:
    """The process-wide management API, over the SCIM API's store."""
    global _manage
    api = get_api()
    if _manage is None:
        with _api_lock:
            if _manage is None:
                from scim_core.app import build_manage_api

                _manage = build_manage_api(api.settings, store=api.store,
                                           recorder=api.recorder)
    return _manage


def manage_base_url(req: func.HttpRequest, configured: str = "") -> str:
    """The absolute management root of a request (``https://host/manage/v1``), on the site
    of ``SCIM_BASE_URL`` when it is set."""
    root = "/" + MANAGE_ROOT
    if configured:
        site = configured[:-len(SCIM_ROOT) - 1] if configured.lower().endswith(
            "/" + SCIM_ROOT) else configured
        return site.rstrip("/") + root
    parts = urlsplit(req.url)
    cut = parts.path.lower().find(root)
    prefix = parts.path[:cut] if cut >= 0 else ""
    return f"{parts.scheme}://{parts.netloc}{prefix}{root}"


@app.route(route=MANAGE_ROOT + "/{*path}", methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def manage(req: func.HttpRequest) -> func.HttpResponse:
    """The management API: tenants, tokens, directory, events and API keys."""
    try:
        api = get_manage_api()
        request = Request(method=req.method, path="/" + (req.route_params.get("path") or ""),
                          base_url=manage_base_url(req, api.settings.base_url),
                          query=dict(req.params), headers=dict(req.headers),
                          body=req.get_body() or b"")
        return to_http_response(api.handle(request))
    except Exception:
        logging.getLogger("scim_core").exception("The management API could not serve the "
                                                 "request")
        return func.HttpResponse(
            b'{"type":"urn:scim-manage:problem:unavailable","title":"The service is '
            b'unavailable","status":503,"detail":"The service is not configured correctly; '
            b'see the function logs."}', status_code=503, headers={"Retry-After": "60"},
            mimetype="application/problem+json")


def get_setup_page() -> Any:
    """The process-wide setup page, over the management API."""
    global _setup
    manage_api = get_manage_api()
    if _setup is None:
        with _api_lock:
            if _setup is None:
                from scim_core.app import build_setup_page

                _setup = build_setup_page(manage_api)
    return _setup


@app.route(route=SETUP_ROOT + "/{*path}", methods=("GET", "HEAD", "POST"),
           auth_level=func.AuthLevel.ANONYMOUS)
def setup(req: func.HttpRequest) -> func.HttpResponse:
    """The customer's setup page: the link exchange, the page and its JSON calls."""
    try:
        page = get_setup_page()
        request = Request(method=req.method, path="/" + (req.route_params.get("path") or ""),
                          base_url=manage_base_url(req, page.manage.settings.base_url)
                          .removesuffix("/" + MANAGE_ROOT) + "/" + SETUP_ROOT,
                          query=dict(req.params), headers=dict(req.headers),
                          body=req.get_body() or b"")
        response = page.handle(request)
        headers = dict(response.headers)
        return func.HttpResponse(body=response.body, status_code=response.status,
                                 headers=headers,
                                 mimetype=headers.pop("Content-Type", "text/html"))
    except Exception:
        logging.getLogger("scim_core").exception("The setup page could not be served")
        return func.HttpResponse(b"The setup page is not available; try again later.",
                                 status_code=503, headers={"Retry-After": "60"},
                                 mimetype="text/plain")


class RetentionFailed(Exception):
    """Raised after a retention run in which some tenants' storage failed, so the
    Functions host records the run as failed; the other tenants were trimmed."""

    def __init__(self, report: RetentionReport) -> None:
        names = ", ".join(report.failed[:20])
        more = f" and {len(report.failed) - 20} more" if len(report.failed) > 20 else ""
        super().__init__(f"Events retention failed for {len(report.failed)} tenant(s): "
                         f"{names}{more}")
        self.report = report


@app.timer_trigger(schedule=retention_schedule(), arg_name="timer", run_on_startup=False,
                   use_monitor=True)
def events_retention(timer: func.TimerRequest) -> None:
    """Remove events older than SCIM_EVENTS_RETENTION_DAYS from every tenant's feed, in
    bounded steps within a time budget; the next run finishes what this one leaves."""
    log = logging.getLogger("scim_core")
    if timer.past_due:
        log.info("Events retention is running late (past due)")
    api = get_api()
    report = trim_feeds(api.store, days=api.settings.events_retention_days,
                        budget_seconds=retention_budget())
    log.info("Events retention removed %d event(s) older than %s from %d tenant(s)%s",
             report.removed, report.before, len(report.tenants),
             "" if report.complete else "; some are not finished")
    activity_retention(api, budget_seconds=retention_budget() / 4)
    idempotency_retention(api, budget_seconds=retention_budget() / 8)
    if report.failed:
        raise RetentionFailed(report)



def activity_retention(api: ScimApi, *, budget_seconds: float) -> None:
    """Trim the activity log in the events retention run (after the feeds); a failure is
    logged, never fails the run: the next one continues."""
    from scim_core.activity.build import trim_activity_of

    log = logging.getLogger("scim_core")
    if not api.settings.activity:
        return
    try:
        trimmed = trim_activity_of(api.settings, api.store, budget_seconds=budget_seconds)
    except Exception as exc:  # the tenant registry could not be listed
        log.warning("Activity retention did not run: %s", type(exc).__name__)
        return
    log.info("Activity retention removed %d row(s)%s", sum(trimmed.removed.values()),
             "" if trimmed.complete else "; some are not finished")


def idempotency_retention(api: ScimApi, *, budget_seconds: float) -> None:
    """Delete the management API's expired ``Idempotency-Key`` answers in the events
    retention run; a failure is logged, never fails the run: the next one continues."""
    from scim_core.manage.idempotency import Idempotency
    from scim_core.manage.rows import side_rows

    log = logging.getLogger("scim_core")
    try:
        trimmed = Idempotency(side_rows(api.store)).trim(budget_seconds=budget_seconds)
    except Exception as exc:  # storage failing: the rows wait for the next run
        log.warning("Idempotency retention did not finish: %s", type(exc).__name__)
        return
    log.info("Idempotency retention removed %d expired answer(s)%s", trimmed.removed,
             "" if trimmed.complete else "; some are not finished")
