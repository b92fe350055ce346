"""Azure Functions entry point (v2 model): triggers that translate to and from the core's
neutral requests, no SCIM logic (docs/architecture.md, "The Functions entry point")."""

from __future__ import annotations

import logging
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


def base_url(req: func.HttpRequest, configured: str = "") -> str:
    """The absolute SCIM root (``https://host/scim/v2``) of a request.

    ``configured`` (the ``SCIM_BASE_URL`` setting) wins when set (a custom domain behind a
    proxy); otherwise the root is cut from the request URL at the ``/scim/v2`` segment,
    keeping any routePrefix.
    """
    if configured:
        return configured
    parts = urlsplit(req.url)
    path = parts.path
    cut = path.lower().find("/" + SCIM_ROOT)
    root = path[: cut + len(SCIM_ROOT) + 1] if cut >= 0 else path.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{root}"


def to_request(req: func.HttpRequest, configured_base_url: str = "") -> Request:
    """The neutral request for a Functions request."""
    return Request(
        method=req.method,
        path="/" + (req.route_params.get("path") or ""),
        base_url=base_url(req, configured_base_url),
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
        api = get_api()
        return to_http_response(api.handle(to_request(req, api.settings.base_url)))
    except Exception:
        # Start-up failures (bad settings) land here; the core handles everything else.
        logging.getLogger("scim_core").exception("The SCIM API could not serve the request")
        return func.HttpResponse(
            b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"503",'
            b'"detail":"The service is not configured correctly; see the function logs."}',
            status_code=503, headers={"Retry-After": "60"}, mimetype="application/scim+json")
