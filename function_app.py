"""Azure Functions entry point (v2 model): triggers that translate to and from the core's
neutral requests, no SCIM logic (docs/architecture.md, "The Functions entry point")."""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

import azure.functions as func

from scim_core import Request, Response, ScimApi, api_from_environment

SCIM_ROOT = "scim/v2"
TENANT_ROOT = "tenants"
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
