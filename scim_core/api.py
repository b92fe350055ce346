"""The HTTP-neutral SCIM API: routing, authentication, content negotiation, and every SCIM
error turned into a response, here only (docs/architecture.md, "A request's path")."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from scim_core.activity.recorder import NullRecorder, Recorder
from scim_core.auth.bearer import presented_token, unauthorized, verify
from scim_core.auth.source import version_of
from scim_core.auth.tenant_tokens import TenantTokens
from scim_core.config import Settings
from scim_core.discovery import (
    list_response,
    resource_type,
    resource_types,
    schema,
    schemas,
    service_provider_config,
)
from scim_core.errors import (
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    NotImplementedByServer,
    ScimError,
    Unauthorized,
)
from scim_core.failures import scim_error
from scim_core.http import SCIM_MEDIA_TYPE, Request, Response
from scim_core.query import Scope, SearchParams
from scim_core.request_parts import (
    body_search,
    json_body,
    projection,
    query_search,
    request_projection,
    search_filter,
    search_params,
)
from scim_core.schema import Registry, ResourceType
from scim_core.service import Rendered, ResourceService, version_matches
from scim_core.store import Store, StoreError, TenantGone
from scim_core.tenants import DISABLED, ENABLED, CachedTenants, Tenant
from scim_core.tenants.model import is_tenant_id

log = logging.getLogger("scim_core")

PUBLIC_ROUTES = frozenset({"serviceproviderconfig", "schemas", "resourcetypes"})
RESOURCE_METHODS = ("GET", "PUT", "PATCH", "DELETE")
COLLECTION_METHODS = ("GET", "POST")
# /Me (RFC 7644 §3.11) is not offered: 501. /Bulk stays an unknown endpoint (404), since
# bulk.supported is false in ServiceProviderConfig.
_ME = "/Me is not offered: the bearer token does not identify a user."

Handler = Callable[[Request, ResourceService, ResourceType, str], Response]


class ScimApi:
    """Serves SCIM requests for every tenant of one store, with one schema registry."""

    def __init__(self, store: Store, registry: Registry, tokens: TenantTokens,
                 settings: Settings, *, tenants: CachedTenants | None = None,
                 recorder: Recorder | None = None) -> None:
        self.store = store
        self.recorder = recorder if recorder is not None else NullRecorder()
        self.registry = registry
        self.tokens = tokens
        self.settings = settings
        # Not ``tenants or ...``: an empty cache is falsy (it has a length).
        self.tenants = tenants if tenants is not None else CachedTenants(
            store.tenant_registry(), ttl=settings.tenant_cache_seconds,
            size=settings.tenant_cache_size)

    def handle(self, request: Request) -> Response:
        """The response to one request; never raises. Its activity entry is recorded after
        the response is built (buffered, never awaited)."""
        started = time.perf_counter()
        admission = _Admission()
        response = self._respond(request, admission)
        self.recorder.record(request, response, admission.tenant, admission.refusal(response),
                             time.perf_counter() - started,
                             token_version=admission.token_version)
        return response

    def _respond(self, request: Request, admission: _Admission) -> Response:
        try:
            return self._dispatch(request, admission)
        except ScimError as failure:
            return Response.json(failure.status, failure.body(), failure.headers)
        except Exception:
            # A 500 is a bug: log it (the request line only; never headers or body).
            log.exception("Unhandled error serving %s %s", request.method, request.path[:200])
            internal = InternalError("Internal server error.")
            return Response.json(internal.status, internal.body())

    def service(self, tenant: str, epoch: int | None = None) -> ResourceService:
        """The service for ``tenant``'s resources (with ``epoch``: of that tenant only)."""
        return ResourceService(self.store.tenant(tenant, epoch), self.registry,
                               max_operations=self.settings.max_operations)

    # -- routing ---------------------------------------------------------------------------

    def _dispatch(self, request: Request, admission: _Admission) -> Response:
        try:
            return self._route(request, admission)
        except Unauthorized as refused:
            if isinstance(refused.__cause__, TenantGone):
                # The tenant was deleted (or its id re-created) since this process cached
                # it: the next request reads the registry and the token again.
                tenant_id = request.tenant or self.settings.tenant
                self.tenants.forget(tenant_id)
                self.tokens.forget(tenant_id)
            raise

    def _route(self, request: Request, admission: _Admission) -> Response:
        method = request.method.upper()
        segments = [s for s in request.path.split("/") if s]
        head = segments[0].lower() if segments else ""
        if head in PUBLIC_ROUTES and method in ("GET", "HEAD"):
            _check_accept(request)
            return self._discovery(method, head, segments[1:], request.base_url)
        tenant = self._admitted(request, admission)
        _check_accept(request)
        if head in PUBLIC_ROUTES:
            return self._discovery(method, head, segments[1:], request.base_url)
        service = self.service(tenant.id, tenant.epoch)
        if head == ".search" and len(segments) == 1:
            if method != "POST":
                raise MethodNotAllowed(".search takes POST.", allow=("POST",))
            return self._search(request, service, self.registry.resource_types,
                                body_search(self._body(request)))
        rt = self.registry.by_endpoint(head) if head else None
        if rt is None:
            if head == "me" and len(segments) == 1:
                raise NotImplementedByServer(_ME)
            raise NotFound(f"No SCIM endpoint at {request.path[:200]}.")
        if len(segments) == 1:
            if method == "GET":
                return self._search(request, service, [rt], query_search(request))
            if method == "POST":
                return self._create(request, service, rt)
            raise MethodNotAllowed(f"{method} is not allowed on {rt.endpoint}.",
                                   allow=COLLECTION_METHODS)
        if len(segments) == 2 and segments[1] == ".search":
            if method != "POST":
                raise MethodNotAllowed(".search takes POST.", allow=("POST",))
            return self._search(request, service, [rt], body_search(self._body(request)))
        if len(segments) != 2:
            raise NotFound(f"No SCIM endpoint at {request.path[:200]}.")
        handlers: dict[str, Handler] = {
            "GET": self._get, "PUT": self._replace, "PATCH": self._patch, "DELETE": self._delete,
        }
        handler = handlers.get(method)
        if handler is None:
            raise MethodNotAllowed(f"{method} is not allowed on {rt.endpoint}/{{id}}.",
                                   allow=RESOURCE_METHODS)
        return handler(request, service, rt, segments[1])

    def _admitted(self, request: Request, admission: _Admission | None = None) -> Tenant:
        """The tenant a request may act in: its token must be the tenant's, and the tenant
        enabled. A missing or malformed credential is refused before any lookup; an unknown
        tenant and a wrong token answer the same 401, so tenant ids cannot be probed; a
        disabled tenant answers 403 to its own token only."""
        token = presented_token(request.header("Authorization"))
        tenant_id = request.tenant or self.settings.tenant
        if not is_tenant_id(tenant_id):
            raise unauthorized()  # an id no tenant can have is not looked up
        try:
            tenant = self.tenants.get(tenant_id)
        except StoreError as failure:
            raise scim_error(failure) from failure
        if tenant is None or tenant.state not in (ENABLED, DISABLED):
            raise unauthorized()
        if admission is not None:
            admission.tenant = tenant.id
        source = self.tokens.source(tenant.id, tenant.epoch)
        verify(token, source)
        if admission is not None:
            admission.verified = True
            admission.token_version = version_of(source, token)
        if tenant.state == DISABLED:
            raise Forbidden("Provisioning is disabled for this tenant; an administrator of "
                            "the service must enable it again.")
        return tenant

    def _discovery(self, method: str, head: str, rest: list[str], base: str) -> Response:
        if method not in ("GET", "HEAD"):
            raise MethodNotAllowed("Discovery endpoints are read-only.", allow=("GET",))
        if len(rest) > 1 or (head == "serviceproviderconfig" and rest):
            raise NotFound("No such discovery document.")
        if head == "serviceproviderconfig":
            return Response.json(200, service_provider_config(self.settings, base))
        if head == "resourcetypes":
            if rest:
                return Response.json(200, resource_type(self.registry, base, rest[0]))
            return Response.json(200, list_response(resource_types(self.registry, base)))
        if rest:
            return Response.json(200, schema(self.registry, base, rest[0]))
        return Response.json(200, list_response(schemas(self.registry, base)))

    # -- resource handlers -----------------------------------------------------------------

    def _create(self, request: Request, service: ResourceService, rt: ResourceType
                ) -> Response:
        rendered = service.create(rt, self._body(request), base_url=request.base_url,
                                  projection=request_projection(self.registry, rt, request))
        return _answer(rendered, 201, {"Location": rendered.location})

    def _get(self, request: Request, service: ResourceService, rt: ResourceType,
             resource_id: str) -> Response:
        rendered = service.get(rt, resource_id, base_url=request.base_url,
                               projection=request_projection(self.registry, rt, request))
        if_none_match = request.header("If-None-Match")
        if if_none_match and version_matches(if_none_match, rendered.version):
            return Response.empty(304, {"ETag": rendered.version})
        return _answer(rendered, 200)

    def _replace(self, request: Request, service: ResourceService, rt: ResourceType,
                 resource_id: str) -> Response:
        rendered = service.replace(rt, resource_id, self._body(request),
                                   base_url=request.base_url,
                                   projection=request_projection(self.registry, rt, request),
                                   if_match=request.header("If-Match"))
        return _answer(rendered, 200)

    def _patch(self, request: Request, service: ResourceService, rt: ResourceType,
               resource_id: str) -> Response:
        rendered = service.patch(rt, resource_id, self._body(request),
                                 base_url=request.base_url,
                                 projection=request_projection(self.registry, rt, request),
                                 if_match=request.header("If-Match"))
        return _answer(rendered, 200)

    def _delete(self, request: Request, service: ResourceService, rt: ResourceType,
                resource_id: str) -> Response:
        service.delete(rt, resource_id, base_url=request.base_url,
                       if_match=request.header("If-Match"))
        return Response.empty(204)

    def _search(self, request: Request, service: ResourceService,
                types: list[ResourceType], raw: dict[str, Any]) -> Response:
        expr = search_filter(raw)
        scopes: list[Scope] = []
        params: SearchParams | None = None
        refusal: ScimError | None = None
        for rt in types:
            try:
                params = search_params(self.registry, rt, raw, expr, self.settings)
                scopes.append(Scope(rt, projection(self.registry, rt, raw["attributes"],
                                                   raw["excludedAttributes"])))
            except ScimError as error:
                # Across resource types, a filter or name that fits one type only
                # searches that type (RFC 7644 §3.4.3); one type reports its error.
                if len(types) == 1:
                    raise
                refusal = refusal or error
        if params is None:
            assert refusal is not None
            raise refusal
        result = service.search(scopes, params, base_url=request.base_url)
        document = list_response(result.resources, total=result.total,
                                 start_index=result.start_index)
        if result.next_cursor:
            document["nextCursor"] = result.next_cursor
        return Response.json(200, document)

    def _body(self, request: Request) -> Any:
        return json_body(request, self.settings.max_body_bytes)


class _Admission:
    """How far a request got through ``_admitted``: the known tenant it named (looked up
    anyway to authenticate it) and whether its token was accepted."""

    tenant: str | None = None
    verified: bool = False
    token_version: str | None = None
    """The token version the request's token matched (for its health's "last used")."""

    def refusal(self, response: Response) -> str | None:
        """Why a request to a known tenant was refused at the door (None: it was not)."""
        if self.tenant is None or (self.verified and response.status != 403):
            return None
        if self.verified:
            return "provisioning is disabled for this tenant"
        if response.status == 401:
            return "the bearer token is not one of this tenant's"
        return f"the tenant's tokens could not be checked (HTTP {response.status})"


def _answer(rendered: Rendered, status: int, headers: dict[str, str] | None = None
            ) -> Response:
    """The response for a rendered resource: 204 when it is answered without a body."""
    tags = {"ETag": rendered.version, **(headers or {})}
    if rendered.resource is None:
        return Response.empty(204, tags)
    return Response.json(status, rendered.resource, tags)


def _check_accept(request: Request) -> None:
    accept = request.header("Accept")
    if not accept:
        return
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(t in ("*/*", "application/*", SCIM_MEDIA_TYPE, "application/json", "")
               for t in types):
        raise NotAcceptable("This service answers with application/scim+json.")
