"""Azure Functions entry point (Python v2 programming model).

Each trigger turns a ``func.HttpRequest`` into a neutral ``scim_core.Request``, lets the
core answer, and turns the neutral response back into a ``func.HttpResponse``. No SCIM
logic lives here. The bearer token is checked by the core, so the triggers are anonymous.
"""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import urlsplit

import azure.functions as func

from scim_core import Request, Response, ScimApi, api_from_environment

SCIM_ROOT = "scim/v2"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_api: ScimApi | None = None
_api_lock = threading.Lock()


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
    global _api
    with _api_lock:
        _api = api


def base_url(req: func.HttpRequest) -> str:
    """The absolute SCIM root (``https://host/scim/v2``) of a request.

    ``SCIM_BASE_URL`` wins when set (a custom domain behind a proxy); otherwise the root is
    cut from the request URL at the ``/scim/v2`` segment, keeping any routePrefix.
    """
    configured = os.environ.get("SCIM_BASE_URL", "").strip().rstrip("/")
    if configured:
        return configured
    parts = urlsplit(req.url)
    path = parts.path
    cut = path.lower().find("/" + SCIM_ROOT)
    root = path[: cut + len(SCIM_ROOT) + 1] if cut >= 0 else path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{root}"


def to_request(req: func.HttpRequest) -> Request:
    return Request(
        method=req.method,
        path="/" + (req.route_params.get("path") or ""),
        base_url=base_url(req),
        query=dict(req.params),
        headers=dict(req.headers),
        body=req.get_body() or b"",
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
    """Every SCIM route: /Users, /Groups, /Schemas, /ResourceTypes, /ServiceProviderConfig."""
    try:
        return to_http_response(get_api().handle(to_request(req)))
    except Exception:
        # Start-up failures (bad settings) land here; the core handles everything else.
        logging.getLogger("scim_core").exception("The SCIM API could not serve the request")
        return func.HttpResponse(
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"503",'
            b'"detail":"The service is not configured correctly; see the function logs."}',
            status_code=503, headers={"Retry-After": "60"}, mimetype="application/scim+json")
