"""Tenants: each serves its own Tenant URL with its own token, isolated from every other."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import function_app
from scim_core import ScimApi, Settings, build_api
from scim_core.auth import StaticTokenSource
from scim_core.auth.tenant_tokens import TenantTokens
from scim_core.store import Store
from scim_core.tenants import DISABLED, ENABLED, CachedTenants, MemoryTenantRegistry, Tenant
from tests.kvfake import FakeKeyVault
from tests.support import TOKEN, USER_SCHEMA, FunctionClient, assert_scim_error, use_api


def tenants_api() -> ScimApi:
    """The API function_app serves now."""
    api = function_app.get_api()
    assert isinstance(api, ScimApi)
    return api

TOKENS = {"acme": "acme-token-0123456789abcdefghijklmnopqrstuv",
          "globex": "globex-token-0123456789abcdefghijklmnopqrs"}


@dataclass
class Tenants:
    store: Store
    vault: FakeKeyVault

    def client(self, tenant: str | None, token: str | None = None) -> FunctionClient:
        """A client of ``tenant``'s Tenant URL presenting its own token (or ``token``)."""
        own = TOKEN if tenant is None else TOKENS.get(tenant, "no-such-token")
        return FunctionClient(tenant, token or own)

    def set_state(self, tenant: str, state: str) -> None:
        registry = self.store.tenant_registry()
        found = registry.get(tenant)
        assert found is not None
        registry.update(found.with_state(state, "2026-12-03T00:00:00Z"))


@pytest.fixture
def tenants(any_store: Store) -> Iterator[Tenants]:
    """Two registered tenants with a token each in the (fake) Key Vault, beside the default
    tenant and its static token, on each store; registry reads are not cached."""
    with FakeKeyVault() as vault:
        for tenant, token in TOKENS.items():
            vault.add_version(f"scim-token-{tenant}", token)
            any_store.tenant_registry().create(
                Tenant(tenant, tenant.title(), ENABLED, "2026-12-01T00:00:00Z",
                       "2026-12-01T00:00:00Z"))
        settings = Settings(store="memory", bearer_token=TOKEN, tenant_cache_seconds=0)
        use_api(build_api(settings, store=any_store, tokens=StaticTokenSource(TOKEN),
                          secrets=vault.client()))
        yield Tenants(any_store, vault)


def test_each_tenant_url_serves_its_own_users(tenants: Tenants) -> None:
    """The same userName exists in two tenants and the default one; each Tenant URL lists
    only its own, and Location and meta.location carry the tenant's URL."""
    created = {}
    for tenant in (None, "acme", "globex"):
        result = tenants.client(tenant).post("/Users", {"schemas": [USER_SCHEMA],
                                                       "userName": "same@x.example"})
        assert result.status == 201, (tenant, result.body[:200])
        root = "/scim/v2" if tenant is None else f"/tenants/{tenant}/scim/v2"
        assert f"{root}/Users/{result.json['id']}" in result.header("Location")
        assert result.json["meta"]["location"] == result.header("Location")
        created[tenant] = result.json["id"]
    for tenant, user_id in created.items():
        listed = tenants.client(tenant).get("/Users").json["Resources"]
        assert [r["id"] for r in listed] == [user_id]
        others = [i for t, i in created.items() if t != tenant]
        for other in others:
            assert_scim_error(tenants.client(tenant).get(f"/Users/{other}"), 404)


def test_a_token_works_on_its_own_tenant_url_only(tenants: Tenants) -> None:
    """acme's token is refused (401) on globex's URL and on the default URL, and the
    default token on acme's URL."""
    assert tenants.client("acme").get("/Users").status == 200
    assert_scim_error(tenants.client("globex", TOKENS["acme"]).get("/Users"), 401)
    assert_scim_error(tenants.client(None, TOKENS["acme"]).get("/Users"), 401)
    assert_scim_error(tenants.client("acme", TOKEN).get("/Users"), 401)


@pytest.mark.parametrize("tenant", ["nobody", "Acme", "a", "x" * 80, "acme%2Fx", "-acme"])
def test_an_unknown_tenant_looks_like_a_wrong_token(tenants: Tenants, tenant: str) -> None:
    """An unknown or malformed tenant id answers exactly what a wrong token answers on a
    real tenant: 401 with the same body, whatever token is presented."""
    wrong = tenants.client("acme", "wrong-token").get("/Users")
    for token in (TOKENS["acme"], "wrong-token"):
        probe = tenants.client(tenant, token).get("/Users")
        assert probe.status == wrong.status == 401
        assert probe.body == wrong.body


def test_a_disabled_tenant_answers_403_and_keeps_its_data(tenants: Tenants) -> None:
    """A disabled tenant answers 403 with a SCIM error saying provisioning is disabled (its
    token still checked first: a wrong one is 401), keeps its data, and serves again when
    enabled; other tenants are untouched."""
    acme = tenants.client("acme")
    user = acme.create_user("keep@x.example")["id"]
    tenants.set_state("acme", DISABLED)
    for result in (acme.get("/Users"), acme.get(f"/Users/{user}"),
                   acme.post("/Users", {"userName": "new@x.example"}),
                   acme.delete(f"/Users/{user}")):
        error = assert_scim_error(result, 403)
        assert "disabled" in error["detail"]
    assert_scim_error(tenants.client("acme", "wrong-token").get("/Users"), 401)
    assert tenants.client("globex").get("/Users").status == 200
    tenants.set_state("acme", ENABLED)
    assert [r["id"] for r in acme.get("/Users").json["Resources"]] == [user]


def test_discovery_is_the_same_on_every_tenant_url(tenants: Tenants) -> None:
    """Discovery needs no token on any Tenant URL, known or not, and differs only in its
    locations, so it reveals nothing about which tenants exist."""
    known = tenants.client("acme", None).get("/ServiceProviderConfig")
    unknown = tenants.client("nobody", None).get("/ServiceProviderConfig")
    assert known.status == unknown.status == 200
    assert known.body.replace(b"acme", b"nobody") == unknown.body


@pytest.mark.parametrize("tenant", ["a#b", "a?b", "a'b", "x" * 5000, "é", "a%00b"])
def test_a_hostile_tenant_id_is_refused_without_a_storage_read(
        tenants: Tenants, tenant: str) -> None:
    """A tenant id with characters no tenant id holds is 401 like any unknown tenant: never
    a 5xx, and it is not looked up in (nor remembered by) the registry."""
    api = tenants_api()
    before = len(api.tenants)
    result = tenants.client(tenant, TOKENS["acme"]).get("/Users")
    assert result.status == 401
    assert len(api.tenants) == before


class CountingRegistry(MemoryTenantRegistry):
    """A memory registry that counts its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, tenant_id: str) -> Tenant | None:
        self.reads += 1
        return super().get(tenant_id)


def test_the_tenant_cache_is_bounded_and_expires() -> None:
    """CachedTenants holds at most its size (least recently used out), answers repeated
    reads, absences included, without the registry until its TTL passes, and serves the
    unregistered default tenant as enabled."""
    now = [0.0]
    registry = CountingRegistry()
    for n in range(5):
        registry.create(Tenant(f"t{n}x", "T", ENABLED, "", ""))
    cache = CachedTenants(registry, ttl=60, size=3, clock=lambda: now[0])
    for n in range(5):
        cache.get(f"t{n}x")
    assert len(cache) == 3 and registry.reads == 5
    cache.get("t4x")
    cache.get("nobody")
    cache.get("nobody")
    assert registry.reads == 6 and len(cache) == 3
    default = cache.get("default")
    assert default is not None and default.state == ENABLED
    now[0] = 61.0
    cache.get("t4x")
    assert registry.reads == 8


def test_tenant_token_sources_are_bounded_and_built_once() -> None:
    """TenantTokens builds each tenant's source once from its own secret name, keeps at
    most its size, refuses every token when no secret store is configured, and returns
    the default tenant's source as given."""
    made: list[str] = []

    def make(secret: str) -> StaticTokenSource:
        made.append(secret)
        return StaticTokenSource(secret)

    default = StaticTokenSource(TOKEN)
    tokens = TenantTokens(default, make, default_secret="scim-bearer-token", size=2)
    assert tokens.source("default") is default
    first = tokens.source("acme")
    assert tokens.source("acme") is first and made == ["scim-token-acme"]
    tokens.source("globex")
    tokens.source("initech")
    assert len(tokens) == 2
    assert TenantTokens(default, None, default_secret="x").source("acme").accepts("x") is False
