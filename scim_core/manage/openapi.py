"""The OpenAPI 3.1 document of ``/manage/v1``, built from these dicts and served at
``/manage/v1/openapi.json``; tests/test_manage_openapi.py checks the API against it."""

from __future__ import annotations

from typing import Any

from scim_core.manage.problems import TITLES, TYPE_PREFIX

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_ID = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next"],
            "properties": {"items": {"type": "array", "items": item}, "next": _NSTR}}


_PROBLEM = {"description": "A problem (RFC 9457)",
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}
_ERRORS = {code: _PROBLEM for code in ("400", "401", "403", "404", "405", "409", "410",
                                       "412", "413", "415", "422", "503")}


def _op(summary: str, responses: dict[str, Any], *, params: list[Any] | None = None,
        body: dict[str, Any] | None = None, scope: str = "manage") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "description": f"Scope: {scope}.",
                          "responses": {**_ERRORS, **responses},
                          "parameters": params or []}
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body}}}
    return op


def _q(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or _STR}


_PAGING = [_q("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
           _q("next", _STR, "the cursor of the previous page")]
_IDEM = {"name": "Idempotency-Key", "in": "header", "required": False,
         "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
_TENANT = _path("tenant", _ID)


def document(base_url: str = "/manage/v1") -> dict[str, Any]:
    """The OpenAPI document, with ``base_url`` as its server."""
    tenant_paths = {
        "/tenants": {
            "get": _op("List tenants", {"200": _json(_page(_ref("Tenant")))}, params=_PAGING),
            "post": _op("Create a tenant: its Tenant URL and first token, shown once",
                        {"201": _json(_ref("CreatedTenant"), "Created")}, params=[_IDEM],
                        body={"type": "object", "required": ["name"],
                              "additionalProperties": False,
                              "properties": {"id": _ID, "name": {"type": "string",
                                                                 "minLength": 1,
                                                                 "maxLength": 256}}}),
        },
        "/tenants/{tenant}": {
            "get": _op("Get a tenant", {"200": _json(_ref("Tenant"))}, params=[_TENANT]),
            "patch": _op("Update a tenant (rename, enable, disable) in one conditional write; "
                         "If-Match takes its ETag",
                         {"200": _json(_ref("Tenant"))},
                         params=[_TENANT, {"name": "If-Match", "in": "header",
                                           "required": False, "schema": _STR}],
                         body={"type": "object", "additionalProperties": False,
                               "properties": {"name": {"type": "string"},
                                              "enabled": {"type": "boolean"}}}),
            "delete": _op("Delete a tenant; poll its deletion",
                          {"202": _json(_ref("Deletion"), "Accepted")}, params=[_TENANT]),
        },
        "/tenants/{tenant}/deletion": {
            "get": _op("A deletion's status", {"200": _json(_ref("Deletion"))},
                       params=[_TENANT]),
        },
        "/tenants/{tenant}/tokens": {
            "get": _op("Token versions (metadata, never values)",
                       {"200": _json({"type": "object", "required": ["items"],
                                      "properties": {"items": {"type": "array",
                                                               "items": _ref("TokenVersion")}}})},
                       params=[_TENANT]),
            "post": _op("Rotate: a new token, shown once",
                        {"201": _json(_ref("Rotation"), "Created")}, params=[_TENANT, _IDEM]),
        },
        "/tenants/{tenant}/tokens/retire": {
            "post": _op("Retire older token versions", {"200": _json(_ref("Retirement"))},
                        params=[_TENANT, _IDEM]),
        },
        "/tenants/{tenant}/setup-links": {
            "get": _op("Setup links (metadata, never values)",
                       {"200": _json(_page(_ref("SetupLink")))}, params=[_TENANT]),
            "post": _op("Create a single-use link to the tenant's setup page, shown once",
                        {"201": _json(_ref("CreatedSetupLink"), "Created")},
                        params=[_TENANT, _IDEM],
                        body={"type": "object", "additionalProperties": False,
                              "properties": {"expiresInSeconds": {
                                  "type": "integer", "minimum": 60, "maximum": 604800,
                                  "default": 86400}}}),
        },
        "/tenants/{tenant}/setup-links/{id}": {
            "delete": _op("Revoke a setup link and end the session it opened",
                          {"200": _json(_ref("SetupLink"))}, params=[_TENANT, _path("id")]),
        },
    }
    read = {
        "/tenants/{tenant}/users": {"get": _op(
            "Users (a page), or by userName or externalId",
            {"200": _json(_page(_ref("User")))},
            params=[_TENANT, *_PAGING, _q("userName", _STR), _q("externalId", _STR)],
            scope="read")},
        "/tenants/{tenant}/users/{id}": {"get": _op(
            "A user", {"200": _json(_ref("User"))}, params=[_TENANT, _path("id")],
            scope="read")},
        "/tenants/{tenant}/users/{id}/groups": {"get": _op(
            "The groups a user is a direct member of",
            {"200": _json(_page({"type": "object", "required": ["groupId"],
                                 "properties": {"groupId": _STR}}))},
            params=[_TENANT, _path("id"), *_PAGING], scope="read")},
        "/tenants/{tenant}/groups": {"get": _op(
            "Groups (a page), or by displayName or externalId",
            {"200": _json(_page(_ref("Group")))},
            params=[_TENANT, *_PAGING, _q("displayName", _STR), _q("externalId", _STR)],
            scope="read")},
        "/tenants/{tenant}/groups/{id}": {"get": _op(
            "A group", {"200": _json(_ref("Group"))}, params=[_TENANT, _path("id")],
            scope="read")},
        "/tenants/{tenant}/groups/{id}/members": {"get": _op(
            "A group's direct members",
            {"200": _json(_page({"type": "object", "required": ["userId"],
                                 "properties": {"userId": _STR, "display": _NSTR}}))},
            params=[_TENANT, _path("id"), *_PAGING], scope="read")},
        "/tenants/{tenant}/events": {"get": _op(
            "Events after a cursor, in commit order; wait up to 25 s for one",
            {"200": _json({"type": "object", "required": ["events", "next"],
                           "properties": {"events": {"type": "array",
                                                     "items": _ref("Event")},
                                          "next": _STR}})},
            params=[_TENANT, _q("after", {"type": "string", "pattern": "^[0-9]{1,19}$"}),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                    _q("wait", {"type": "number", "minimum": 0, "maximum": 25})],
            scope="read")},
        "/tenants/{tenant}/activity": {"get": _op(
            "The tenant's activity log, newest first: by time range, status class, "
            "operation and a named userName / externalId / displayName / resource id",
            {"200": _json({"type": "object", "required": ["tenant", "entries"],
                           "properties": {"tenant": _STR,
                                          "entries": {"type": "array",
                                                      "items": _ref("ActivityEntry")},
                                          "nextCursor": _STR}})},
            params=[_TENANT, _q("since", _STR, "ISO 8601 time (default: the retention)"),
                    _q("until", _STR, "ISO 8601 time"),
                    _q("status", {"enum": ["2xx", "3xx", "4xx", "5xx", "auth"]}),
                    _q("operation", _STR, "METHOD and route template: POST /Users"),
                    _q("name", _STR, "a userName, externalId, displayName or resource id"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _q("cursor", _STR, "the nextCursor of the previous page")],
            scope="read")},
        "/tenants/{tenant}/health": {"get": _op(
            "Connection health (first and last request, last success, last auth failure, "
            "token versions' last use) and the minute aggregates since `since`",
            {"200": _json(_ref("Health"))},
            params=[_TENANT, _q("since", _STR, "ISO 8601 time (default: an hour ago)"),
                    _q("until", _STR, "ISO 8601 time"), _q("operation", _STR)],
            scope="read")},
        "/tenants/{tenant}/events/position": {"get": _op(
            "The feed's position now (take it before a resynchronisation)",
            {"200": _json({"type": "object", "required": ["position"],
                           "properties": {"position": _STR}})},
            params=[_TENANT], scope="read")},
    }
    keys = {
        "/apikeys": {
            "get": _op("API keys (metadata)", {"200": _json(_page(_ref("ApiKey")))}),
            "post": _op("Create an API key, shown once",
                        {"201": _json(_ref("CreatedApiKey"), "Created")}, params=[_IDEM],
                        body={"type": "object", "required": ["scope"],
                              "additionalProperties": False,
                              "properties": {"scope": {"enum": ["manage", "read"]},
                                             "tenant": _ID, "description": _STR}}),
        },
        "/apikeys/{id}": {"delete": _op("Revoke an API key", {"200": _json(_ref("ApiKey"))},
                                        params=[_path("id")])},
    }
    tenant = {"type": "object", "required": ["id", "name", "state", "enabled"],
              "properties": {"id": _STR, "name": _STR,
                             "state": {"enum": ["enabled", "disabled", "deleting"]},
                             "enabled": {"type": "boolean"}, "created": _STR,
                             "changed": _STR}}
    setup_link = {"type": "object", "required": ["id", "tenant", "created", "expires"],
                  "properties": {"id": _STR, "tenant": _STR, "created": _STR,
                                 "expires": _STR, "used": _NSTR, "revoked": _NSTR}}
    api_key = {"type": "object", "required": ["id", "scope"],
               "properties": {"id": _STR, "scope": {"enum": ["manage", "read"]},
                              "tenant": _NSTR, "description": _STR, "created": _STR,
                              "revoked": _NSTR}}
    meta = {"type": "object", "properties": {"created": _STR, "lastModified": _STR,
                                             "version": _STR}}
    schemas = {
        "Problem": {"type": "object", "required": ["type", "title", "status"],
                    "properties": {"type": {"enum": [TYPE_PREFIX + k for k in TITLES]},
                                   "title": _STR, "status": {"type": "integer"},
                                   "detail": _STR}},
        "Tenant": tenant,
        "CreatedTenant": {"allOf": [tenant, {"type": "object", "required": ["token"],
                                             "properties": {"token": _STR,
                                                            "tenantUrl": _NSTR}}]},
        "Deletion": {"type": "object", "required": ["tenant", "status"],
                     "properties": {"tenant": _STR,
                                    "status": {"enum": ["deleting", "deleted"]}}},
        "TokenVersion": {"type": "object", "required": ["version", "enabled", "valid"],
                         "properties": {"version": _STR, "created": _NSTR,
                                        "enabled": {"type": "boolean"}, "notBefore": _NSTR,
                                        "expires": _NSTR, "valid": {"type": "boolean"},
                                        "lastUsed": _NSTR}},
        "Rotation": {"type": "object", "required": ["tenant", "token", "version"],
                     "properties": {"tenant": _STR, "token": _STR, "version": _STR,
                                    "previousValid": {"type": "boolean"},
                                    "tenantUrl": _NSTR}},
        "Retirement": {"type": "object", "required": ["tenant", "disabled"],
                       "properties": {"tenant": _STR, "disabled": {"type": "integer"},
                                      "keptVersion": _STR, "keptCreated": _NSTR}},
        "User": {"type": "object", "required": ["id", "userName"],
                 "properties": {"id": _STR, "userName": _STR,
                                "active": {"type": ["boolean", "null"]},
                                "displayName": _NSTR, "externalId": _NSTR,
                                "primaryEmail": _NSTR, "attributes": {"type": "object"},
                                "meta": meta}},
        "Group": {"type": "object", "required": ["id", "displayName"],
                  "properties": {"id": _STR, "displayName": _STR, "externalId": _NSTR,
                                 "attributes": {"type": "object"}, "meta": meta}},
        "Event": {"type": "object", "required": ["id", "position", "type"],
                  "properties": {"id": _STR, "position": {"type": "integer"}, "type": _STR,
                                 "time": _STR, "resourceType": _STR, "resourceId": _STR,
                                 "version": _STR,
                                 "resource": {"type": ["object", "null"]},
                                 "attributes": {"type": "array", "items": _STR},
                                 "members": {"type": "array", "items": _STR}}},
        "ActivityEntry": {"type": "object",
                          "required": ["time", "method", "route", "status", "outcome",
                                       "operation"],
                          "properties": {"id": _STR, "time": _STR, "method": _STR,
                                         "route": _STR, "status": {"type": "integer"},
                                         "outcome": _STR, "operation": _STR,
                                         "durationMs": {"type": "number"},
                                         "resourceType": _STR, "resourceId": _STR,
                                         "userName": _STR, "externalId": _STR,
                                         "displayName": _STR, "scimType": _STR,
                                         "detail": _STR, "body": _STR, "userAgent": _STR,
                                         "requestId": _STR}},
        "Health": {"type": "object", "required": ["tenant", "seen", "minutes"],
                   "properties": {"tenant": _STR, "seen": {"type": "boolean"},
                                  "firstRequest": _STR, "lastRequest": _STR,
                                  "lastSuccess": _STR, "lastAuthFailure": _STR,
                                  "lastAuthFailureReason": _STR,
                                  "tokenVersions": {"type": "array", "items": {
                                      "type": "object", "required": ["version"],
                                      "properties": {"version": _STR, "created": _NSTR,
                                                     "lastUsed": _NSTR,
                                                     "valid": {"type": "boolean"}}}},
                                  "minutes": {"type": "array", "items": {
                                      "type": "object",
                                      "properties": {"minute": _STR, "operation": _STR,
                                                     "requests": {"type": "integer"}}}}}},
        "SetupLink": setup_link,
        "CreatedSetupLink": {"allOf": [setup_link, {"type": "object", "required": ["url"],
                                                    "properties": {"url": _STR}}]},
        "ApiKey": api_key,
        "CreatedApiKey": {"allOf": [api_key, {"type": "object", "required": ["key"],
                                              "properties": {"key": _STR}}]},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "SCIM service management API", "version": "1.0.0",
                 "description": "Tenants, tokens, directory and events of one deployment. "
                                "Authenticate with an API key or a Microsoft Entra ID "
                                "access token as a bearer token; errors are RFC 9457 "
                                "problem documents."},
        "servers": [{"url": base_url}],
        "security": [{"bearer": []}],
        "paths": {**tenant_paths, **read, **keys},
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "An API key (smk_...) or an Entra ID access token"}}},
    }
