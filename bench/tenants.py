"""Suite 6, tenants: Entra's steady requests in one tenant with 1 and with 10,000 tenants
registered (median latency and storage calls per request), and the first request of a
tenant whose registry entry and token are not cached yet.

Everything runs in process (``ScimApi.handle`` with the tenant's URL) on the app's own
builder, ``build_api``: the registry is the store's, the tenants' tokens come from
``KeyVaultTokenSource`` over ``SecretsDouble``, a stand-in for Key Vault's ``SecretClient``
that answers from memory and counts its calls. Storage calls are Table Storage requests
(``CountingTransport``) or, on the memory store, calls into the Store protocol and the
registry (``CountingStore``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from bench import workloads
from bench.environment import Environment, log
from bench.runner import Caller, Job, Sample, run_serial, summarise
from bench.systems import TOKEN, CallCounter, _counting_table_store

if TYPE_CHECKING:
    from azure.keyvault.secrets import SecretClient

MIX = ("userName eq", "patch user", "member add")
"""Entra's steady requests: the match, an attribute update, a member PATCH."""
REGISTERED_AT = "2026-12-01T00:00:00Z"


def tenant_id(n: int) -> str:
    return f"bench-t{n:05d}"


def tenant_token(tenant: str) -> str:
    return f"{tenant}-token-0123456789abcdefghijklmnopqrstuvwxyz"


class SecretsDouble:
    """What ``KeyVaultTokenSource`` calls on a ``SecretClient``, answered from memory: one
    enabled version per secret. ``calls`` counts every call, as Key Vault requests."""

    vault_url = "https://bench-secrets-double.invalid"  # never contacted

    def __init__(self) -> None:
        self.calls = CallCounter()
        self._values: dict[str, str] = {}
        self._created = datetime(2026, 12, 1, tzinfo=UTC)

    def set(self, name: str, value: str) -> None:
        self._values[name] = value

    def _properties(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, version="v1", enabled=True, not_before=None,
                               expires_on=None, created_on=self._created)

    def list_properties_of_secret_versions(self, name: str) -> list[SimpleNamespace]:
        self.calls.add()
        return [self._properties(name)] if name in self._values else []

    def get_secret(self, name: str, version: str | None = None) -> SimpleNamespace:
        self.calls.add()
        return SimpleNamespace(name=name, value=self._values[name],
                               properties=self._properties(name))

    def close(self) -> None:
        pass


class _Counted:
    """A store view or registry whose every method call is counted as a storage call."""

    def __init__(self, inner: Any, counter: CallCounter) -> None:
        self._inner = inner
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._counter.add()
            return attr(*args, **kwargs)

        return counted


class CountingStore:
    """The memory store, counting each call into its tenants' views and its registry."""

    def __init__(self, inner: Any, counter: CallCounter) -> None:
        self._inner = inner
        self._counter = counter

    def tenant(self, name: str, epoch: int | None = None) -> Any:
        return _Counted(self._inner.tenant(name, epoch), self._counter)

    def tenant_registry(self) -> Any:
        return _Counted(self._inner.tenant_registry(), self._counter)


@dataclass
class TenantWorld:
    """A store with ``registered`` tenants; the measured one (the last registered) holds
    users and a group."""

    store_name: str
    registered: int
    backend: Any
    storage: CallCounter
    secrets: SecretsDouble
    settings: Any
    tenant: str = ""
    api: Any = None
    names: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    spare: list[str] = field(default_factory=list)
    group_id: str = ""
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.registered:,} tenant{'s' if self.registered != 1 else ''}"

    def build(self) -> Any:
        """A new API over this world's store: every cache empty, as in a new process."""
        from scim_core import build_api
        from scim_core.auth import StaticTokenSource

        api = build_api(self.settings, store=self.backend, tokens=StaticTokenSource(TOKEN),
                        secrets=cast("SecretClient", self.secrets))  # wrapped as Key Vault
        self.closers.append(api.recorder.close)  # before the store: its writer flushes into it
        return api

    def caller(self, api: Any = None) -> Caller:
        from scim_core import Request

        served = api or self.api
        tenant = self.tenant
        base = f"http://127.0.0.1/tenants/{tenant}/scim/v2"
        plain = {"Authorization": f"Bearer {tenant_token(tenant)}"}
        with_body = {**plain, "Content-Type": "application/scim+json"}

        def call(method: str, path: str, query: Mapping[str, str] | None = None,
                 body: bytes | None = None) -> tuple[int, bytes]:
            response = served.handle(Request(method, path, base, query or {},
                                             plain if body is None else with_body,
                                             body or b"", tenant=tenant))
            return response.status, response.body

        return call

    def storage_calls(self) -> int:
        """Storage calls made so far."""
        return self.storage.value

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()


def _register(world: TenantWorld, workers: int) -> None:
    from scim_core.tenants import ENABLED, Tenant

    registry = world.backend.tenant_registry()

    def register(n: int) -> None:
        tenant = tenant_id(n)
        world.secrets.set(f"scim-token-{tenant}", tenant_token(tenant))
        registry.create(Tenant(tenant, f"Customer {n}", ENABLED, REGISTERED_AT, REGISTERED_AT))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(register, range(world.registered)))


def _warm(world: TenantWorld, workers: int) -> None:
    """Every registered tenant in the API's registry and token caches, as after each has
    sent a request: the caches at their steady-state size."""
    api = world.api

    def warm(n: int) -> None:
        tenant = tenant_id(n)
        api.tenants.get(tenant)
        assert api.tokens.source(tenant).accepts(tenant_token(tenant))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(warm, range(world.registered)))


def make_world(env: Environment, store_name: str, registered: int) -> TenantWorld:
    from scim_core import Settings
    from scim_core.store import MemoryStore

    s = env.scale
    storage = CallCounter()
    if store_name == "memory":
        settings = Settings(store="memory", bearer_token=TOKEN)
        backend: Any = CountingStore(MemoryStore(), storage)
        closers: list[Callable[[], None]] = []
    else:
        settings = Settings(store="tables", tables_connection=env.connection,
                            table_name=env.table("tenants"), bearer_token=TOKEN)
        backend = _counting_table_store(settings, storage)
        closers = [backend.close]
    world = TenantWorld(store_name, registered, backend, storage, SecretsDouble(), settings,
                        tenant=tenant_id(registered - 1), closers=closers)
    workers = 1 if store_name == "memory" else s.clients * 2
    started = time.monotonic()
    _register(world, workers)
    world.api = world.build()
    _warm(world, workers)
    call = world.caller()
    made = workloads.seed_users(call, "tenant", 0, s.tenant_users + s.spare_users)
    world.ids = [i for i, _ in made[:s.tenant_users]]
    world.names = [n for _, n in made[:s.tenant_users]]
    world.spare = [i for i, _ in made[s.tenant_users:]]
    world.group_id = workloads.seed_group(call, "tenant", 0, world.ids[:s.tenant_users // 2])
    log(f"tenants: {store_name}, {world.label} registered, caches warm and "
        f"{s.tenant_users + s.spare_users} users seeded in {time.monotonic() - started:.1f} s")
    return world


def _jobs(workload: str, world: TenantWorld, r: int) -> Iterator[Job]:
    if workload == "userName eq":
        return workloads.lookup_jobs(world.names[r % 7:] + world.names[:r % 7])
    if workload == "patch user":
        return workloads.patch_jobs(world.ids, f"t{r}")
    return workloads.member_add_remove_jobs(world.group_id, world.spare)


@dataclass(frozen=True)
class ColdRequest:
    """The first request of a tenant on an API with empty caches (median of ``runs``)."""

    latency_us: float
    storage_calls: float
    keyvault_calls: float
    status: int
    runs: int


def measure_cold(world: TenantWorld, runs: int) -> ColdRequest:
    """Build a fresh API (empty registry and token caches) ``runs`` times and time its
    first request, Entra's userName match, in the measured tenant."""
    latencies: list[float] = []
    storage: list[int] = []
    vault: list[int] = []
    status = 0
    for k in range(runs):
        api = world.build()
        call = world.caller(api)
        query = workloads.user_query(world.names[k % len(world.names)])
        before = world.storage.value, world.secrets.calls.value
        start = time.perf_counter_ns()
        status, body = call("GET", "/Users", query, None)
        latencies.append((time.perf_counter_ns() - start) / 1e3)
        storage.append(world.storage.value - before[0])
        vault.append(world.secrets.calls.value - before[1])
        assert workloads.total_results(status, body, what="cold userName eq") == 1
    return ColdRequest(statistics.median(latencies), statistics.median(storage),
                       statistics.median(vault), status, runs)


def measure(env: Environment, store_name: str) -> tuple[dict[tuple[str, int], list[Sample]],
                                                        dict[int, int],
                                                        dict[int, ColdRequest]]:
    """Rounds of the steady mix on the two worlds of one store (alternating which goes
    first), Key Vault calls made while measuring, and the cold first request."""
    s = env.scale
    worlds = [make_world(env, store_name, 1), make_world(env, store_name, s.tenants_registered)]
    samples: dict[tuple[str, int], list[Sample]] = {}
    vault_calls = {w.registered: 0 for w in worlds}
    try:
        for r in range(-1, s.tenant_rounds):  # round -1 warms up and is dropped
            if r >= 0:
                log(f"tenants: {store_name} round {r + 1}/{s.tenant_rounds}")
            for workload in MIX:
                for w in (worlds if r % 2 == 0 else worlds[::-1]):
                    before = w.secrets.calls.value
                    sample = run_serial(w.caller(), islice(_jobs(workload, w, r), s.tenant_ops),
                                        budget_s=s.tenant_budget_s, min_jobs=s.growth_min_ops,
                                        storage_calls=w.storage_calls)
                    if r >= 0:
                        samples.setdefault((workload, w.registered), []).append(sample)
                        vault_calls[w.registered] += w.secrets.calls.value - before
        cold = {w.registered: measure_cold(w, s.tenant_cold_runs) for w in worlds}
    finally:
        for w in worlds:
            w.close()
    return samples, vault_calls, cold


def run(env: Environment, results: Any) -> None:
    """The tenants suite: memory, then Table Storage (Azurite) when available."""
    from bench.report import TenantCold, TenantRow

    s = env.scale
    stores = ["memory"] + (["tables"] if env.with_tables else [])
    for store_name in stores:
        samples, vault_calls, cold = measure(env, store_name)
        large = s.tenants_registered
        for workload in (*MIX, "steady mix"):
            chosen = MIX if workload == "steady mix" else (workload,)
            small_samples = [x for w in chosen for x in samples[(w, 1)]]
            large_samples = [x for w in chosen for x in samples[(w, large)]]
            results.tenants.append(TenantRow(
                workload, store_name, 1, large,
                summarise(small_samples, by_wall=False, counted=True),
                summarise(large_samples, by_wall=False, counted=True),
                vault_calls[1] if workload == "steady mix" else None,
                vault_calls[large] if workload == "steady mix" else None))
        for registered, found in cold.items():
            results.tenant_cold.append(TenantCold(store_name, registered, found.latency_us,
                                                  found.storage_calls, found.keyvault_calls,
                                                  found.status, found.runs))
        if store_name == "tables":
            env.release("tenants")

