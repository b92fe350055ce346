"""What the suites share: the scale presets, Azurite and servers, and seeded data sets."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench import peer, workloads
from bench.azurite import Azurite
from bench.azurite import installed as azurite_installed
from bench.systems import OURS, Target, ours_http


@dataclass(frozen=True)
class Scale:
    """How much work each suite does. ``FULL`` is ``make bench``; ``QUICK`` and ``TINY``
    (the smoke test) run the same code on less data."""

    rounds: int = 5
    ops: int = 500
    budget_s: float = 1.0
    base_users: int = 500
    http_rounds: int = 3
    http_ops: int = 3000
    http_budget_s: float = 2.0
    clients: int = 4
    small_users: int = 500
    large_users: int = 20_000
    large_members: int = 20_000
    tables_large_users: int = 4_000
    tables_large_members: int = 4_000
    """Table Storage growth on stock Azurite (``--stock-growth``): its point reads and
    inserts scan the whole partition (see docs/performance.md), so seeding 20,000 users
    into it takes far longer than a benchmark run."""
    spare_users: int = 64
    growth_rounds: int = 5
    growth_ops: int = 300
    growth_budget_s: float = 0.6
    growth_min_ops: int = 1
    cycle_users: int = 2_000
    cycle_groups: int = 20
    cycle_memberships: int = 10_000
    members_per_patch: int = 10
    tables_cycle_divisor: int = 10
    cold_runs: int = 5
    tenants_registered: int = 10_000
    """Tenants registered in the large world of the tenants suite (the small one: 1)."""
    tenant_users: int = 200
    tenant_rounds: int = 5
    tenant_ops: int = 300
    tenant_budget_s: float = 1.0
    tenant_cold_runs: int = 5
    feed_clients: tuple[int, ...] = (4, 8)
    """Clients of the change feed suite's Entra cycle, all on one tenant."""
    feed_workers: tuple[int, ...] = (1, 2)
    """Dev host worker processes of that cycle (each caches its own feed head)."""
    feed_rounds: int = 3
    feed_events: int = 20_000
    """Events in the feed the read throughput is measured on."""
    feed_read_rounds: int = 3
    feed_page: int = 1000
    feed_follow_writes: int = 200
    feed_poll_s: float = 0.2
    """How long the follower waits after a page that was not full."""
    feed_write_gap_s: float = 0.1
    """The follow latency's writes are spaced by a random pause of up to this."""
    paging_small: int = 1_000
    paging_large: int = 100_000
    """Users of the paging suite's two tenants (bench/paging.py)."""
    paging_rounds: int = 15
    latency_rtt_ms: float = 9.0
    """The round trip the latency suite's delay proxy adds (bench/latency.py)."""
    latency_ops: int = 40
    """Requests of each type per RTT, one client (latency suite)."""
    latency_clients: tuple[int, ...] = (1, 4, 8, 16)
    latency_workers: tuple[int, ...] = (1, 4)
    latency_create_s: float = 3.0
    """How long each client and worker count sends creates."""
    latency_cycle: tuple[int, int, int] = (500, 5, 2_500)
    """Users, groups and memberships of the latency suite's Entra-like cycle."""


FULL = Scale()
QUICK = Scale(rounds=3, ops=200, budget_s=0.4, http_rounds=2, http_ops=1000, http_budget_s=1.0,
              large_users=5_000, large_members=5_000, tables_large_users=2_000,
              tables_large_members=2_000, growth_rounds=3, growth_ops=100,
              growth_budget_s=0.3, cycle_users=500, cycle_groups=5, cycle_memberships=2_500,
              tables_cycle_divisor=5, cold_runs=3, tenant_rounds=3, tenant_ops=150,
              tenant_budget_s=0.5, tenant_cold_runs=3, feed_rounds=2, feed_events=5_000,
              feed_read_rounds=2, feed_follow_writes=100, paging_large=20_000,
              paging_rounds=5, latency_ops=20, latency_create_s=1.5,
              latency_cycle=(200, 2, 1_000))
TINY = Scale(rounds=1, ops=8, budget_s=0.2, base_users=12, http_rounds=1, http_ops=12,
             http_budget_s=0.2, clients=2, small_users=6, large_users=30, large_members=24,
             tables_large_users=30, tables_large_members=24, spare_users=4, growth_rounds=1,
             growth_ops=5, growth_budget_s=0.2,
             cycle_users=10, cycle_groups=2, cycle_memberships=12, members_per_patch=3,
             tables_cycle_divisor=1, cold_runs=1, tenants_registered=40, tenant_users=6,
             tenant_rounds=1, tenant_ops=5, tenant_budget_s=0.2, tenant_cold_runs=2,
             feed_clients=(2, 3), feed_rounds=1, feed_events=120, feed_read_rounds=1,
             feed_page=50, feed_follow_writes=5, feed_poll_s=0.05, feed_write_gap_s=0.02,
             paging_small=250, paging_large=700, paging_rounds=2, latency_rtt_ms=2.0,
             latency_ops=3, latency_clients=(1, 2), latency_workers=(1, 2),
             latency_create_s=0.3, latency_cycle=(6, 2, 8))

def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def tables_available() -> bool:
    try:
        from scim_core.store.tables import table_store  # noqa: F401
    except ImportError:
        return False
    return azurite_installed()


@dataclass
class Environment:
    """What the suites share: Azurite and the HTTP servers, started on first use."""

    scale: Scale
    with_peer: bool = True
    with_tables: bool = True
    keyed_azurite: bool = False
    workers: int = 1
    """Worker processes of the dev host on Table Storage (the memory store is per process)."""
    stock_growth: bool = False
    """Measure Table Storage growth on the run's stock Azurite, at the smaller sizes,
    instead of on a second Azurite with keyed lookups."""
    batch_codec: bool | None = None
    """Force the azure-core batch codec on or off in the dev host (None: as the app does)."""
    _azurite: Azurite | None = None
    _growth_azurite: Azurite | None = None
    _servers: dict[str, Target] = field(default_factory=dict)
    _tables: dict[str, list[str]] = field(default_factory=dict)

    @property
    def azurite_pid(self) -> int | None:
        process = self._azurite.process if self._azurite is not None else None
        return process.pid if process is not None else None

    @property
    def connection(self) -> str:
        if self._azurite is None:
            keyed = ", keyed lookups" if self.keyed_azurite else ""
            log(f"starting Azurite (table service, in memory, temp location{keyed})")
            self._azurite = Azurite(keyed_lookups=self.keyed_azurite).start()
        return self._azurite.connection_string

    @property
    def growth_keyed(self) -> bool:
        return self.keyed_azurite or not self.stock_growth

    @property
    def growth_connection(self) -> str:
        """Where Table Storage growth is measured: an Azurite with keyed lookups (a second
        one unless the whole run uses keyed lookups), as Azure finds an entity by its key;
        with ``stock_growth`` the run's own Azurite."""
        if self.keyed_azurite or not self.growth_keyed:
            return self.connection
        if self._growth_azurite is None:
            log("starting a second Azurite (keyed lookups) for Table Storage growth")
            self._growth_azurite = Azurite(keyed_lookups=True).start()
        return self._growth_azurite.connection_string

    def http(self, system: str, store: str = "memory", purpose: str = "http") -> Target:
        """The HTTP server of a system for one purpose (each purpose gets a fresh one, and
        on Table Storage a fresh table: Azurite slows down as a partition grows)."""
        key = f"{system}/{store}/{purpose}"
        if key not in self._servers:
            log(f"starting the {system} HTTP server ({store}, {purpose})")
            if system == OURS:
                tables = store == "tables"
                self._servers[key] = ours_http(store, connection=self.connection if tables
                                               else "",
                                               table=self.table(purpose) if tables else "",
                                               workers=self.workers if tables else 1,
                                               batch_codec=self.batch_codec)
            else:
                self._servers[key] = peer.http()
        return self._servers[key]

    def table(self, purpose: str) -> str:
        """A new table name for ``purpose``; ``release(purpose)`` deletes the table."""
        name = f"bench{purpose}{uuid.uuid4().hex[:10]}"
        self._tables.setdefault(purpose, []).append(name)
        return name

    def release(self, purpose: str) -> None:
        """Stops the purpose's servers and deletes its tables, so that a later suite does
        not measure an Azurite still holding this one's data."""
        for key in [k for k in self._servers if k.endswith("/" + purpose)]:
            self._servers.pop(key).close()
        names = self._tables.pop(purpose, [])
        if purpose == "growth" and self._growth_azurite is not None:
            self._growth_azurite.stop()
            self._growth_azurite = None
        elif names and self._azurite is not None:
            from azure.data.tables import TableServiceClient

            from scim_core.activity.tables import activity_table_name

            with TableServiceClient.from_connection_string(self.connection) as service:
                for name in names:
                    service.delete_table(name)
                    service.delete_table(activity_table_name(name))  # the app's activity log

    def close(self) -> None:
        for target in self._servers.values():
            target.close()
        self._servers.clear()
        for azurite in (self._azurite, self._growth_azurite):
            if azurite is not None:
                azurite.stop()
        self._azurite = self._growth_azurite = None


# -- set-up --------------------------------------------------------------------------------------


@dataclass
class World:
    """A system with users (and a group) in it, ready to be measured."""

    target: Target
    ids: list[str]
    names: list[str]
    group_id: str = ""
    spare_ids: list[str] = field(default_factory=list)
    readers: Target | None = None
    """Azurite alone on this world's table (Table Storage growth only)."""


def _close(caller: object) -> None:
    close = getattr(caller, "close", None)
    if callable(close):
        close()


def seed_users(target: Target, tag: str, first: int, last: int, *, workers: int = 1
               ) -> list[tuple[str, str]]:
    if target.seed_users is not None:
        return target.seed_users(tag, first, last)
    bounds = [first + (last - first) * k // workers for k in range(workers + 1)]
    parts: list[list[tuple[str, str]]] = [[] for _ in range(workers)]
    failures: list[BaseException] = []

    def work(k: int) -> None:
        caller = target.make_caller()
        try:
            parts[k] = workloads.seed_users(caller, tag, bounds[k], bounds[k + 1])
        except BaseException as exc:
            failures.append(exc)
        finally:
            _close(caller)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [pair for part in parts for pair in part]


def seed_group(target: Target, tag: str, n: int, members: Sequence[str] = ()) -> str:
    if target.seed_group is not None:
        return target.seed_group(tag, n, members)
    caller = target.make_caller()
    try:
        return workloads.seed_group(caller, tag, n, members)
    finally:
        _close(caller)


def world(target: Target, tag: str, users: int, *, members: int = 0, spare: int = 0,
          workers: int = 1) -> World:
    started = time.monotonic()
    made = seed_users(target, tag, 0, users + spare, workers=workers)
    ids = [i for i, _ in made[:users]]
    seeded = time.monotonic()
    group = seed_group(target, tag, 0, ids[:members]) if members else ""
    if users + spare >= 1000:
        log(f"seeded {target.label} '{tag}': {users + spare:,} users in "
            f"{seeded - started:.1f} s" + (f", a group of {members:,} members in "
                                         f"{time.monotonic() - seeded:.1f} s" if members else ""))
    return World(target, ids, [n for _, n in made[:users]], group,
                 [i for i, _ in made[users:]])
