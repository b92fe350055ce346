"""Test clients: one calls the registered Azure Function with a real ``func.HttpRequest``
(as the Functions host does), one speaks HTTP to the dev host."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import azure.functions as func

import devhost
import function_app

TOKEN = "test-token-0123456789abcdefghijklmnopqrstuvwxyz"
HOST = "scim.test.example"
BASE = f"https://{HOST}/scim/v2"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


@dataclass
class Result:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str:
        """A response header by name, ignoring case; "" when absent."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), "")


def _encode(body: Any, raw: bytes | None) -> bytes:
    if raw is not None:
        return raw
    return b"" if body is None else json.dumps(body).encode()


class _Client:
    token: str | None = TOKEN

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                token: str | None = "default") -> Result:
        raise NotImplementedError

    def _headers(self, body: Any, raw: bytes | None, headers: dict[str, str] | None,
                 token: str | None) -> dict[str, str]:
        result: dict[str, str] = {}
        effective = self.token if token == "default" else token
        if effective is not None:
            result["Authorization"] = f"Bearer {effective}"
        if body is not None or raw is not None:
            result["Content-Type"] = "application/scim+json"
        result.update(headers or {})
        return result

    def get(self, path: str, **kw: Any) -> Result:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Result:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Result:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Result:
        return self.request("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Result:
        return self.request("DELETE", path, **kw)

    # Entra-shaped conveniences used across the suites.

    def create_user(self, user_name: str, **attrs: Any) -> dict[str, Any]:
        result = self.post("/Users", {"schemas": [USER_SCHEMA], "userName": user_name, **attrs})
        assert result.status == 201, result.body
        return dict(result.json)

    def create_group(self, name: str, **attrs: Any) -> dict[str, Any]:
        result = self.post("/Groups", {"schemas": [GROUP_SCHEMA], "displayName": name, **attrs})
        assert result.status == 201, result.body
        return dict(result.json)

    def patch_ops(self, path: str, *operations: dict[str, Any], **kw: Any) -> Result:
        return self.patch(path, {"schemas": [PATCH_OP], "Operations": list(operations)}, **kw)


def tenant_root(tenant: str | None) -> str:
    """The SCIM root path of a tenant (None: the default tenant's ``/scim/v2``)."""
    return "/scim/v2" if tenant is None else f"/tenants/{tenant}/scim/v2"


class FunctionClient(_Client):
    """Calls the functions registered in function_app.py, routed by their templates, at the
    SCIM root of ``tenant`` (None: the default tenant's ``/scim/v2``)."""

    def __init__(self, tenant: str | None = None, token: str | None = TOKEN) -> None:
        self.routes = devhost.load_routes()
        self.root = tenant_root(tenant)
        self.token = token

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                token: str | None = "default") -> Result:
        url_path = self.root + path
        found = None
        for route in self.routes:
            match = route.pattern.match(url_path)
            if match and method.upper() in route.methods:
                found = (route, {k: v for k, v in match.groupdict().items() if v is not None})
                break
        if found is None:
            return Result(404)
        route, route_params = found
        query = f"?{urlencode(params)}" if params else ""
        request = func.HttpRequest(
            method=method.upper(), url=f"https://{HOST}{url_path}{query}",
            headers=self._headers(body, raw, headers, token), params=dict(params or {}),
            route_params=route_params, body=_encode(body, raw))
        response = route.handler(request)
        result_headers = dict(response.headers)
        result_headers.setdefault("Content-Type", response.mimetype)
        return Result(response.status_code, result_headers, response.get_body())


class HttpClient(_Client):
    """Speaks HTTP/1.1 to a dev host on 127.0.0.1 over one keep-alive connection."""

    def __init__(self, port: int, tenant: str | None = None, token: str | None = TOKEN
                 ) -> None:
        self.port = port
        self.root = tenant_root(tenant)
        self.token = token
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                token: str | None = "default") -> Result:
        query = f"?{urlencode(params)}" if params else ""
        payload = _encode(body, raw)
        all_headers = self._headers(body, raw, headers, token)
        try:
            self.connection.request(method, f"{self.root}{path}{query}", payload or None,
                                    all_headers)
            response = self.connection.getresponse()
        except (ConnectionError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.connection.request(method, f"{self.root}{path}{query}", payload or None,
                                    all_headers)
            response = self.connection.getresponse()
        return Result(response.status, dict(response.getheaders()), response.read())

    def close(self) -> None:
        self.connection.close()


def use_api(api: Any) -> None:
    """Make function_app serve ``api`` (what the app would build from its settings)."""
    function_app.reset_api(api)


# Assertions shared by the HTTP conformance suites.

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def assert_scim_error(result: Result, status: int, scim_type: str | None = None
                      ) -> dict[str, Any]:
    """Assert ``result`` is an RFC 7644 §3.12 error with ``status`` (and ``scimType``)."""
    assert result.status == status, (result.status, result.body[:500])
    assert (result.header("Content-Type") or "").startswith("application/scim+json")
    body = result.json
    assert body["schemas"] == [ERROR_SCHEMA], body
    assert body["status"] == str(status), body
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    return dict(body)


def nulls(document: Any, where: str = "$") -> list[str]:
    """The JSON paths of every ``null`` inside ``document`` (empty when there is none)."""
    if document is None:
        return [where]
    if isinstance(document, dict):
        return [p for k, v in document.items() for p in nulls(v, f"{where}.{k}")]
    if isinstance(document, list):
        return [p for i, v in enumerate(document) for p in nulls(v, f"{where}[{i}]")]
    return []
