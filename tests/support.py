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
        self.base = f"https://{HOST}{self.root}"
        """The absolute SCIM root the service answers with (Location, meta.location, $ref)."""
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


# Registered tenants, with their tokens in a Key Vault fake (tests/kvfake.py).

REGISTERED = "2026-12-01T00:00:00Z"


def tenant_token(tenant: str) -> str:
    """The bearer token tests give ``tenant`` (43+ URL-safe characters, like rotate-token's)."""
    return f"{tenant}-token-0123456789abcdefghijklmnopqrstuvwxyz"


def register_tenant(store: Any, vault: Any, tenant: str, token: str | None = None) -> str:
    """Register ``tenant`` (enabled) in ``store``'s registry and give it ``token`` (default
    ``tenant_token``) as the newest version of its ``scim-token-<id>`` secret in ``vault``
    (a ``FakeKeyVault``), unless that version is already there; returns the token."""
    from scim_core.tenants import ENABLED, Tenant

    token = token or tenant_token(tenant)
    secret = f"scim-token-{tenant}"
    versions = vault.versions(secret)
    if not versions or versions[-1].value != token:
        vault.add_version(secret, token)
    store.tenant_registry().create(Tenant(tenant, tenant.title(), ENABLED, REGISTERED,
                                          REGISTERED))
    return token


def tenant_api(store: Any, vault: Any, **overrides: Any) -> Any:
    """The API over ``store`` serving the default tenant with ``TOKEN`` and every registered
    tenant with the token in ``vault`` (a ``FakeKeyVault``), as ``build_api`` builds it."""
    from scim_core import Settings, build_api
    from scim_core.auth import StaticTokenSource

    settings = Settings(store="memory", bearer_token=TOKEN, **overrides)
    return build_api(settings, store=store, tokens=StaticTokenSource(TOKEN),
                     secrets=vault.client())


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


def check_tenants_apart(store: Any, tenants: list[str]) -> int:
    """Check that no row of one tenant reaches another; returns how many checks were made.

    Through the Store protocol (both stores): the tenants' ids are disjoint, every member of
    a tenant's group is a user of that tenant and every group a user lists is a group of
    that tenant. On a TableStore also on the raw rows: every id a row of a tenant's
    partition names (``id``, ``groupId``, ``userId``) is a document of that partition.
    """
    from scim_core.store import GROUP, USER

    owner: dict[str, str] = {}
    checks = 0
    for tenant in tenants:
        view = store.tenant(tenant)
        users = {r.id for r in view.scan(USER)}
        groups = {r.id for r in view.scan(GROUP)}
        for resource_id in users | groups:
            assert resource_id not in owner, f"{resource_id} is in {owner.get(resource_id)} " \
                                             f"and {tenant}"
            owner[resource_id] = tenant
        for group_id in groups:
            members = {m.value for m in view.members(group_id)}
            assert members <= users, (tenant, group_id, sorted(members - users)[:5])
            checks += 1
        for user_id in users:
            listed = set(view.groups_of(user_id))
            assert listed <= groups, (tenant, user_id, sorted(listed - groups)[:5])
            checks += 1
    table = getattr(store, "table", None)
    if table is None:
        return checks
    from scim_core.store.tables import keys

    for tenant in tenants:
        rows = list(table.query_entities("PartitionKey eq @p",
                                         parameters={"p": keys.partition_key(tenant)}))
        documents = {e["id"] for e in rows if e["RowKey"].startswith(("user:", "group:"))}
        for entity in rows:
            if entity["RowKey"].startswith("event:"):
                # an event may name a resource deleted since, but never another tenant's
                named_ids = [entity["resourceId"], *json.loads(entity["members"])]
                assert entity["tenant"] == tenant and entity["id"].startswith(f"{tenant}:")
                assert all(owner.get(i, tenant) == tenant for i in named_ids), entity["id"]
                checks += 1
                continue
            for name in ("id", "groupId", "userId"):
                named = entity.get(name)
                if named is not None:
                    assert named in documents, (
                        f"row {entity['RowKey']} of {tenant} names {named}, which is "
                        f"{'in ' + owner[named] if named in owner else 'nowhere'}")
                    checks += 1
    return checks
