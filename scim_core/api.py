"""The HTTP-neutral SCIM API: method + path + query + headers + body -> response.

Authentication, content negotiation, size limits, routing and the mapping of every error
to a SCIM Error response happen here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scim_core.auth import TokenSource, authenticate
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
    InternalError,
    InvalidSyntax,
    InvalidValue,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    NotImplementedByServer,
    PayloadTooLarge,
    ScimError,
    UnsupportedMediaType,
)
from scim_core.filter import check_filter, parse_filter
from scim_core.http import SCIM_MEDIA_TYPE, Request, Response
from scim_core.projection import Projection, parse_names
from scim_core.query import Searcher, SearchParams
from scim_core.resources import location, render
from scim_core.schema import Registry, ResourceType
from scim_core.service import Loaded, ResourceService, version_matches

log = logging.getLogger("scim_core")

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PUBLIC_ROUTES = frozenset({"serviceproviderconfig", "schemas", "resourcetypes"})
RESOURCE_METHODS = ("GET", "PUT", "PATCH", "DELETE")
COLLECTION_METHODS = ("GET", "POST")
# Endpoints RFC 7644 defines that this server does not offer: 501, as §3.11 asks for /Me.
# /Bulk stays an unknown endpoint (404): bulk.supported is false in ServiceProviderConfig.
_UNOFFERED = {
    ".search": "Searching across resource types is not offered; use /Users/.search or "
               "/Groups/.search.",
    "me": "/Me is not offered: the bearer token does not identify a user.",
}


@dataclass(frozen=True)
class _Call:
    request: Request
    tenant: str


class ScimApi:
    """Serves SCIM requests for one store and one token source."""

    def __init__(self, service: ResourceService, tokens: TokenSource, settings: Settings
                 ) -> None:
        self.service = service
        self.registry: Registry = service.registry
        self.searcher = Searcher(service.store, service.registry)
        self.tokens = tokens
        self.settings = settings

    def handle(self, request: Request) -> Response:
        try:
            return self._dispatch(request)
        except ScimError as failure:
            return Response.json(failure.status, failure.body(), failure.headers)
        except Exception:
            # A 500 is a bug: log it (the request line only; never headers or body).
            log.exception("Unhandled error serving %s %s", request.method, request.path[:200])
            internal = InternalError("Internal server error.")
            return Response.json(internal.status, internal.body())

    # -- routing ---------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        method = request.method.upper()
        segments = [s for s in request.path.split("/") if s]
        head = segments[0].lower() if segments else ""
        if not (head in PUBLIC_ROUTES and method in ("GET", "HEAD")):
            authenticate(request.header("Authorization"), self.tokens)
        self._check_accept(request)
        call = _Call(request, self.settings.tenant)
        base = request.base_url
        if head in PUBLIC_ROUTES:
            return self._discovery(method, head, segments[1:], base)
        rt = self.registry.by_endpoint(head) if head else None
        if rt is None:
            if head in _UNOFFERED and len(segments) == 1:
                raise NotImplementedByServer(_UNOFFERED[head])
            raise NotFound(f"No SCIM endpoint at {request.path[:200]}.")
        if len(segments) == 1:
            if method == "GET":
                return self._search(call, rt, self._query_search(call, rt))
            if method == "POST":
                return self._create(call, rt)
            raise MethodNotAllowed(f"{method} is not allowed on {rt.endpoint}.",
                                   allow=COLLECTION_METHODS)
        if len(segments) == 2 and segments[1] == ".search":
            if method != "POST":
                raise MethodNotAllowed(".search takes POST.", allow=("POST",))
            return self._search(call, rt, self._body_search(call, rt))
        if len(segments) != 2:
            raise NotFound(f"No SCIM endpoint at {request.path[:200]}.")
        resource_id = segments[1]
        handlers: dict[str, Callable[[_Call, ResourceType, str], Response]] = {
            "GET": self._get, "PUT": self._replace, "PATCH": self._patch, "DELETE": self._delete,
        }
        handler = handlers.get(method)
        if handler is None:
            raise MethodNotAllowed(f"{method} is not allowed on {rt.endpoint}/{{id}}.",
                                   allow=RESOURCE_METHODS)
        return handler(call, rt, resource_id)

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

    def _create(self, call: _Call, rt: ResourceType) -> Response:
        body = self._json_body(call.request)
        projection = self._projection(call.request, rt)
        loaded = self.service.create(call.tenant, rt, body,
                                     members=projection.wants("members"))
        url = location(call.request.base_url, rt, loaded.record.id)
        return self._resource(call, rt, loaded, projection, 201, {"Location": url})

    def _get(self, call: _Call, rt: ResourceType, resource_id: str) -> Response:
        projection = self._projection(call.request, rt)
        loaded = self.service.get(call.tenant, rt, resource_id,
                                  members=projection.wants("members"),
                                  groups=rt.name == "User" and projection.wants("groups"))
        if_none_match = call.request.header("If-None-Match")
        if if_none_match and version_matches(if_none_match, loaded.record.meta.version):
            return Response.empty(304, {"ETag": loaded.record.meta.version})
        return self._resource(call, rt, loaded, projection, 200)

    def _replace(self, call: _Call, rt: ResourceType, resource_id: str) -> Response:
        body = self._json_body(call.request)
        projection = self._projection(call.request, rt)
        loaded = self.service.replace(call.tenant, rt, resource_id, body,
                                      if_match=call.request.header("If-Match"),
                                      members=projection.wants("members"))
        return self._resource(call, rt, loaded, projection, 200)

    def _patch(self, call: _Call, rt: ResourceType, resource_id: str) -> Response:
        body = self._json_body(call.request)
        projection = self._projection(call.request, rt)
        # Groups answer 204 as Entra expects, unless the client asked for attributes.
        if_match = call.request.header("If-Match")
        if rt.name == "Group" and projection.is_identity:
            version = self.service.patch_quietly(call.tenant, rt, resource_id, body,
                                                 if_match=if_match)
            return Response.empty(204, {"ETag": version})
        loaded = self.service.patch(call.tenant, rt, resource_id, body, if_match=if_match,
                                    members=projection.wants("members"))
        return self._resource(call, rt, loaded, projection, 200)

    def _delete(self, call: _Call, rt: ResourceType, resource_id: str) -> Response:
        self.service.delete(call.tenant, rt, resource_id,
                            if_match=call.request.header("If-Match"))
        return Response.empty(204)

    def _resource(self, call: _Call, rt: ResourceType, loaded: Loaded, projection: Projection,
                  status: int, headers: dict[str, str] | None = None) -> Response:
        resource = render(self.registry, rt, loaded.record, call.request.base_url,
                          members=loaded.members, groups=loaded.groups)
        return Response.json(status, projection.apply(resource),
                             {"ETag": loaded.record.meta.version, **(headers or {})})

    # -- search ----------------------------------------------------------------------------

    def _search(self, call: _Call, rt: ResourceType,
                params: tuple[SearchParams, Projection]) -> Response:
        search, projection = params
        result = self.searcher.search(call.tenant, rt, search, call.request.base_url,
                                      projection)
        document = list_response(result.resources, total=result.total,
                                 start_index=result.start_index)
        if result.next_cursor:
            document["nextCursor"] = result.next_cursor
        return Response.json(200, document)

    def _query_search(self, call: _Call, rt: ResourceType) -> tuple[SearchParams, Projection]:
        r = call.request
        return self._search_params(rt, {
            "filter": r.param("filter"), "startIndex": r.param("startIndex"),
            "count": r.param("count"), "sortBy": r.param("sortBy"),
            "sortOrder": r.param("sortOrder"), "cursor": r.param("cursor"),
            "attributes": r.param("attributes"),
            "excludedAttributes": r.param("excludedAttributes"),
        })

    def _body_search(self, call: _Call, rt: ResourceType) -> tuple[SearchParams, Projection]:
        body = self._json_body(call.request)
        if not isinstance(body, dict):
            raise InvalidSyntax("A SearchRequest must be a JSON object.")
        lowered = {k.lower(): v for k, v in body.items()}
        names = ("filter", "startIndex", "count", "sortBy", "sortOrder", "cursor",
                 "attributes", "excludedAttributes")
        return self._search_params(rt, {n: lowered.get(n.lower()) for n in names})

    def _search_params(self, rt: ResourceType, raw: dict[str, Any]
                       ) -> tuple[SearchParams, Projection]:
        filter_text = raw["filter"]
        if filter_text is not None and not isinstance(filter_text, str):
            raise InvalidValue("'filter' must be a string.")
        expr = parse_filter(filter_text) if filter_text and filter_text.strip() else None
        if expr is not None:
            check_filter(expr, self.registry, rt)
        sort_by = raw["sortBy"]
        if sort_by is not None and not isinstance(sort_by, str):
            raise InvalidValue("'sortBy' must be an attribute name.")
        if sort_by:
            try:
                self.registry.resolve(rt, sort_by)
            except ValueError as exc:
                raise InvalidValue("'sortBy' must be an attribute name.") from exc
        order = raw["sortOrder"]
        if order is not None and (not isinstance(order, str)
                                  or order.lower() not in ("ascending", "descending")):
            raise InvalidValue("'sortOrder' must be 'ascending' or 'descending'.")
        start = max(1, self._integer(raw["startIndex"], "startIndex", 1))
        count = self._integer(raw["count"], "count", self.settings.default_page_size)
        count = min(max(0, count), self.settings.max_results)
        cursor = raw["cursor"]
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidValue("'cursor' must be a string.")
        if cursor is not None and raw["startIndex"] is not None:
            raise InvalidValue("Use either 'cursor' or 'startIndex', not both.")
        params = SearchParams(expr, start, count, sort_by or None,
                              bool(order) and str(order).lower() == "descending", cursor)
        projection = Projection.parse(
            self.registry, rt, parse_names(raw["attributes"], "attributes"),
            parse_names(raw["excludedAttributes"], "excludedAttributes"))
        return params, projection

    @staticmethod
    def _integer(raw: Any, name: str, default: int) -> int:
        if raw is None or raw == "":
            return default
        if isinstance(raw, bool):
            raise InvalidValue(f"'{name}' must be an integer.")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str):
            text = raw.strip()
            if _INTEGER.fullmatch(text):  # ASCII only: "¹" and "--5" pass str.isdigit()
                return int(text)
        raise InvalidValue(f"'{name}' must be an integer.")

    # -- request parsing -------------------------------------------------------------------

    def _projection(self, request: Request, rt: ResourceType) -> Projection:
        return Projection.parse(
            self.registry, rt,
            parse_names(request.param("attributes"), "attributes"),
            parse_names(request.param("excludedAttributes"), "excludedAttributes"))

    @staticmethod
    def _check_accept(request: Request) -> None:
        accept = request.header("Accept")
        if not accept:
            return
        types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
        if not any(t in ("*/*", "application/*", SCIM_MEDIA_TYPE, "application/json", "")
                   for t in types):
            raise NotAcceptable("This service answers with application/scim+json.")

    def _json_body(self, request: Request) -> Any:
        if len(request.body) > self.settings.max_body_bytes:
            raise PayloadTooLarge(
                f"The request body is larger than {self.settings.max_body_bytes} bytes.")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type and "json" not in content_type and content_type != "text/plain":
            raise UnsupportedMediaType("Send the body as application/scim+json.")
        if not request.body.strip():
            raise InvalidSyntax("The request body is empty; a JSON object is required.")
        try:
            text = request.body.decode("utf-8-sig")
            value = json.loads(text, parse_constant=_reject_constant)
        except UnicodeDecodeError as exc:
            raise InvalidSyntax("The request body is not valid UTF-8.") from exc
        except RecursionError as exc:
            raise InvalidSyntax("The request body is nested too deeply.") from exc
        except ValueError as exc:
            raise InvalidSyntax(f"The request body is not valid JSON: {str(exc)[:120]}") from exc
        _check_storable(value, strings=_SUSPECT_ESCAPE.search(text) is not None)
        return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_INTEGER = re.compile(r"-?[0-9]{1,11}")
# NUL and lone surrogates can only enter a JSON text as \u escapes; look closer only then.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# A SCIM resource is a few levels deep, a PATCH body a few more (PATCH values: 32 levels).
MAX_BODY_DEPTH = 40


def _check_storable(value: Any, *, strings: bool) -> None:
    """Refuse what would poison the store once accepted: nesting deeper than
    ``MAX_BODY_DEPTH`` (later copies and filter evaluation would overflow the stack on it),
    and, when ``strings``, a key or string holding NUL or a lone surrogate (a lone surrogate
    cannot be encoded as UTF-8, so every read of the resource would fail; NUL is refused
    because storage keys and the applications reading the table cannot be trusted with it)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if strings and _UNSTORABLE.search(item):
                raise InvalidValue("The request body holds a string with a NUL character or "
                                   "an unpaired UTF-16 surrogate (\\u0000, \\ud800-\\udfff).")
        elif isinstance(item, dict | list):
            if depth > MAX_BODY_DEPTH:
                raise InvalidSyntax(
                    f"The request body is nested more than {MAX_BODY_DEPTH} levels deep.")
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
