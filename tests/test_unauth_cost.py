"""What an unauthenticated caller can make the service do: no storage call without a
well-formed bearer, a bounded number of registry reads for unknown tenant ids, known
tenants kept cached through a flood, and one byte-identical 401 for every refusal."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from scim_core import ScimApi, Settings, build_api
from scim_core.app import build_admin
from scim_core.auth.bearer import MAX_TOKEN_LENGTH, bearer_token
from scim_core.rate_limit import RateLimit
from scim_core.store import MemoryStore, Store
from scim_core.tenants import CachedTenants, Tenant
from scim_core.tenants.model import new_tenant_id
from scim_core.tenants.registry import (
    UNKNOWN_READS_BURST,
    UNKNOWN_READS_PER_SECOND,
    TenantRegistry,
)
from tests.azurite import TableHarness
from tests.support import FunctionClient, Result, use_api

pytestmark = pytest.mark.timeout(300)


def malformed_headers() -> list[dict[str, str]]:
    """Credentials that cannot be a token the service holds: none, other schemes, an empty
    or multi-part bearer, characters outside RFC 6750's b64token, an oversized one."""
    return [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer two parts"},
        {"Authorization": "Bearer quote\"d"},
        {"Authorization": "Bearer " + "a" * 4097},
        {"Authorization": "Token abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},
        {"Authorization": "Bearer token,with,commas"},
    ]


def get(tenant: str | None, headers: dict[str, str]) -> Result:
    return FunctionClient(tenant, None).get("/Users", headers=headers)


def bearer() -> dict[str, str]:
    """A well-formed bearer no tenant has: 43 URL-safe characters, like rotate-token's."""
    return {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}


@dataclass
class Deployment:
    """The app as built from settings without Key Vault: tenants' tokens in the store's own
    local secrets, so a token lookup is a storage call too."""

    store: Store
    tenant: str
    token: str


def deploy(store: Store, **settings: Any) -> Deployment:
    admin = build_admin(Settings(store="memory"), store=store)
    tenant, token = admin.create("Acme")
    use_api(build_api(Settings(store="memory", **settings), store=store))
    return Deployment(store, tenant.id, token)


@pytest.fixture
def on_azurite(table_harness: TableHarness) -> Iterator[tuple[Deployment, TableHarness]]:
    deployment = deploy(table_harness.store)
    assert get(deployment.tenant, {"Authorization": f"Bearer {deployment.token}"}).status == 200
    table_harness.requests.clear()
    yield deployment, table_harness


def test_300_unauthenticated_gets_cost_no_storage_call(
        on_azurite: tuple[Deployment, TableHarness]) -> None:
    """300 GETs without a well-formed bearer, on fresh random tenant ids, on a real tenant
    and on the default tenant, reach Table Storage not once (counted on the wire)."""
    deployment, harness = on_azurite
    malformed = malformed_headers()
    statuses = set()
    for n in range(300):
        tenant = (new_tenant_id(), deployment.tenant, None)[n % 3]
        statuses.add(get(tenant, malformed[n % len(malformed)]).status)
    assert statuses == {401}
    assert harness.requests.count == 0, harness.requests.entries[:5]


def test_random_ids_with_bearers_cost_bounded_reads_on_azurite(
        on_azurite: tuple[Deployment, TableHarness]) -> None:
    """1,000 requests with well-formed bearers on fresh random tenant ids cost at most the
    registry's read budget (100 at once, then 20 a second) in storage calls, and the real
    tenant is still served from the cache afterwards."""
    deployment, harness = on_azurite
    started = time.monotonic()
    for _ in range(1000):
        assert get(new_tenant_id(), bearer()).status == 401
    elapsed = time.monotonic() - started
    allowed = UNKNOWN_READS_BURST + UNKNOWN_READS_PER_SECOND * elapsed
    assert harness.requests.count <= allowed, (harness.requests.count, elapsed)
    harness.requests.clear()
    assert get(deployment.tenant, {"Authorization": f"Bearer {deployment.token}"}).status == 200
    # The users listing reads the tenant's partition; no registry ($tenants) read is needed.
    assert not any("$tenants" in target for _, target in harness.requests.entries)


class CountingRegistry:
    """The store's registry, counting reads."""

    def __init__(self, inner: TenantRegistry) -> None:
        self.inner = inner
        self.reads = 0

    def get(self, tenant_id: str) -> Tenant | None:
        self.reads += 1
        return self.inner.get(tenant_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_random_ids_neither_evicts_known_tenants_nor_exceeds_the_budget() -> None:
    """With a tenant cache of 10, 1,000 random ids with well-formed bearers per second cost at
    most 100 registry reads in the first second and 20 in each next one, and the 5 known
    tenants are served throughout without a registry read."""
    store = MemoryStore()
    admin = build_admin(Settings(store="memory"), store=store)
    known = [admin.create(f"T{n}") for n in range(5)]
    clock = Clock()
    registry = CountingRegistry(store.tenant_registry())
    tenants = CachedTenants(registry, ttl=60, size=10, clock=clock)  # type: ignore[arg-type]
    api = build_api(Settings(store="memory", tenant_cache_size=10), store=store)
    use_api(ScimApi(api.store, api.registry, api.tokens, api.settings, tenants=tenants))
    for tenant, token in known:
        assert get(tenant.id, {"Authorization": f"Bearer {token}"}).status == 200
    assert registry.reads == 5
    budget = [UNKNOWN_READS_BURST, UNKNOWN_READS_PER_SECOND, UNKNOWN_READS_PER_SECOND]
    for second, allowed in enumerate(budget):
        registry.reads = 0
        for _ in range(1000):
            assert get(new_tenant_id(), bearer()).status == 401
        assert registry.reads == allowed, (second, registry.reads)
        registry.reads = 0
        for tenant, token in known:
            assert get(tenant.id, {"Authorization": f"Bearer {token}"}).status == 200
        assert registry.reads == 0
        clock.now += 1.0
    assert len(tenants) == 5


def test_a_cold_process_takes_up_any_number_of_real_tenants_at_once() -> None:
    """Reads that find a tenant cost no budget: 500 registered tenants first seen in the same
    instant are all served, and random ids are still read no more than the burst."""
    store = MemoryStore()
    registry = store.tenant_registry()
    names = [f"t{n:04d}" for n in range(500)]
    for name in names:
        registry.create(Tenant(name, name, "enabled", "2026-12-01T00:00:00Z",
                               "2026-12-01T00:00:00Z"))
    counting = CountingRegistry(registry)
    tenants = CachedTenants(counting, clock=Clock())  # type: ignore[arg-type]
    assert all(tenants.get(name) is not None for name in names)
    counting.reads = 0
    assert all(tenants.get(new_tenant_id()) is None for _ in range(1000))
    assert counting.reads == UNKNOWN_READS_BURST


def test_an_id_found_absent_is_not_read_again_within_the_ttl() -> None:
    """An unknown id asked for again is answered from the absent-ids cache, not re-read, and
    the budget is not spent on it."""
    store = MemoryStore()
    clock = Clock()
    registry = CountingRegistry(store.tenant_registry())
    tenants = CachedTenants(registry, ttl=60, clock=clock,  # type: ignore[arg-type]
                            reads_per_second=0, burst=1)
    assert tenants.get("nobody-here") is None
    assert tenants.get("nobody-here") is None
    assert tenants.get("another-one") is None  # over the budget: not read
    assert registry.reads == 1
    clock.now += 61
    assert tenants.get("nobody-here") is None
    assert registry.reads == 1  # the budget is spent and never refills at 0 a second


def test_every_refusal_is_byte_identical() -> None:
    """A missing header, each malformed one, an unknown tenant, an id no tenant can have, a
    tenant id past the read budget, and a wrong token on a real tenant and on the default
    tenant all get the same status, headers and body."""
    store = MemoryStore()
    deployment = deploy(store, bearer_token=secrets.token_urlsafe(32))
    refusals = [get(deployment.tenant, headers) for headers in malformed_headers()]
    refusals += [get(None, headers) for headers in malformed_headers()]
    refusals.append(get(new_tenant_id(), bearer()))
    refusals.append(get("Not_A-Tenant-Id!", bearer()))
    refusals.append(get(deployment.tenant, bearer()))
    refusals.append(get(None, bearer()))
    refusals.append(get(deployment.tenant, {"Authorization": f"Bearer {deployment.token}x"}))
    for _ in range(UNKNOWN_READS_BURST + 5):  # the last ones are refused without a read
        refusals.append(get(new_tenant_id(), bearer()))
    first = refusals[0]
    assert first.status == 401
    assert first.header("WWW-Authenticate").startswith("Bearer")
    for refusal in refusals:
        assert (refusal.status, refusal.headers, refusal.body) == (
            first.status, first.headers, first.body)


def test_every_token_the_admin_issues_is_well_formed() -> None:
    """Tokens from tenant create and rotate-token (43 URL-safe characters) all pass the shape
    check that runs before any lookup, so the check never refuses a token we issued."""
    store = MemoryStore()
    admin = build_admin(Settings(store="memory"), store=store)
    issued = [admin.create(f"T{n}")[1] for n in range(20)]
    for _ in range(30):
        issued.append(admin.rotate_token())
        admin.retire_token()
    assert all(len(token) == 43 for token in issued)
    assert all(bearer_token(f"Bearer {token}") == token for token in issued)


@pytest.mark.parametrize("token", ["a", "x" * MAX_TOKEN_LENGTH, "dGVzdA==", "A-b.c_d~e+f/g=",
                                   "0123456789" * 25])
def test_hand_set_tokens_of_any_b64token_shape_are_well_formed(token: str) -> None:
    """A token stored by hand (az keyvault secret set) of 1 to 4,096 RFC 6750 b64token
    characters passes the shape check, whatever its length or padding."""
    assert bearer_token(f"Bearer {token}") == token


def test_the_read_budget_refills_at_its_rate_and_never_beyond_its_burst() -> None:
    """RateLimit allows its burst at once, then its rate per second, never more than the burst
    after a long pause, and nothing extra when the clock steps back."""
    clock = Clock()
    limit = RateLimit(20, 100, clock=clock)
    assert sum(limit.take() for _ in range(500)) == 100
    clock.now += 0.5
    assert sum(limit.take() for _ in range(500)) == 10
    clock.now += 3600
    assert sum(limit.take() for _ in range(500)) == 100
    clock.now -= 10
    assert sum(limit.take() for _ in range(500)) == 0
