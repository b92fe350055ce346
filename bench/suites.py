"""The five suites: in process, HTTP, growth, Entra's initial cycle and cold start."""

from __future__ import annotations

import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

from bench import coldstart, peer, workloads
from bench.azurite import Azurite
from bench.azurite import installed as azurite_installed
from bench.http_load import run_concurrent
from bench.report import Cold, Cycle, Growth, Results, Row
from bench.runner import Job, Sample, Stat, run_serial, summarise
from bench.systems import OURS, Target, ours_http, ours_in_process, process_cpu_s


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
    """Azurite's point reads and inserts scan the whole partition (see docs/performance.md),
    so seeding 20,000 users into it takes far longer than a benchmark run."""
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


FULL = Scale()
QUICK = Scale(rounds=3, ops=200, budget_s=0.4, http_rounds=2, http_ops=1000, http_budget_s=1.0,
              large_users=5_000, large_members=5_000, tables_large_users=2_000,
              tables_large_members=2_000, growth_rounds=3, growth_ops=100,
              growth_budget_s=0.3, cycle_users=500, cycle_groups=5, cycle_memberships=2_500,
              tables_cycle_divisor=5, cold_runs=3)
TINY = Scale(rounds=1, ops=8, budget_s=0.2, base_users=12, http_rounds=1, http_ops=12,
             http_budget_s=0.2, clients=2, small_users=6, large_users=30, large_members=24,
             tables_large_users=30, tables_large_members=24, spare_users=4, growth_rounds=1,
             growth_ops=5, growth_budget_s=0.2,
             cycle_users=10, cycle_groups=2, cycle_memberships=12, members_per_patch=3,
             tables_cycle_divisor=1, cold_runs=1)

WORKLOADS = ("create user", "userName eq", "get user", "patch user", "member add")


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
    _azurite: Azurite | None = None
    _servers: dict[str, Target] = field(default_factory=dict)

    @property
    def azurite_pid(self) -> int | None:
        process = self._azurite.process if self._azurite is not None else None
        return process.pid if process is not None else None

    @property
    def connection(self) -> str:
        if self._azurite is None:
            log("starting Azurite (table service, in memory, temp location)")
            self._azurite = Azurite().start()
        return self._azurite.connection_string

    def http(self, system: str, store: str = "memory", purpose: str = "http") -> Target:
        """The HTTP server of a system for one purpose (each purpose gets a fresh one, and
        on Table Storage a fresh table: Azurite slows down as a partition grows)."""
        key = f"{system}/{store}/{purpose}"
        if key not in self._servers:
            log(f"starting the {system} HTTP server ({store}, {purpose})")
            if system == OURS:
                self._servers[key] = ours_http(store, connection=self.connection if
                                               store == "tables" else "",
                                               table=table_name(purpose))
            else:
                self._servers[key] = peer.http()
        return self._servers[key]

    def release(self, purpose: str) -> None:
        for key in [k for k in self._servers if k.endswith("/" + purpose)]:
            self._servers.pop(key).close()

    def close(self) -> None:
        for target in self._servers.values():
            target.close()
        self._servers.clear()
        if self._azurite is not None:
            self._azurite.stop()
            self._azurite = None


def table_name(purpose: str) -> str:
    return f"bench{purpose}{uuid.uuid4().hex[:10]}"


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


def _shuffled(values: Sequence[str], seed: int) -> list[str]:
    copy = list(values)
    random.Random(seed).shuffle(copy)
    return copy


def _jobs(workload: str, w: World, r: int) -> Iterator[Job]:
    if workload == "create user":
        return workloads.create_jobs(f"create{r}")
    if workload == "userName eq":
        return workloads.lookup_jobs(_shuffled(w.names, r))
    if workload == "get user":
        return workloads.get_jobs(_shuffled(w.ids, r))
    if workload == "patch user":
        return workloads.patch_jobs(_shuffled(w.ids, r), f"r{r}")
    group = seed_group(w.target, f"add{r}", r)
    return workloads.member_add_jobs(group, _shuffled(w.ids, r))


def _alternate(items: Sequence[World], r: int) -> list[World]:
    """Round r runs the systems in turn from a different start, spreading the noise."""
    return [items[(r + k) % len(items)] for k in range(len(items))]


# -- suite 1: in process -------------------------------------------------------------------------


def inprocess(env: Environment, results: Results) -> None:
    s = env.scale
    targets = [ours_in_process("memory")] + ([peer.in_process()] if env.with_peer else [])
    worlds = [world(t, "base", s.base_users) for t in targets]
    for w in worlds:  # warm-up: imports, caches, first-call costs
        for workload in WORKLOADS:
            run_serial(w.target.make_caller(), islice(_jobs(workload, w, -1), 20))
    samples: dict[tuple[str, str], list[Sample]] = {}
    for r in range(s.rounds):
        log(f"in process: round {r + 1}/{s.rounds}")
        for workload in WORKLOADS:
            for w in _alternate(worlds, r):
                sample = run_serial(w.target.make_caller(), islice(_jobs(workload, w, r), s.ops),
                                    budget_s=s.budget_s)
                samples.setdefault((workload, w.target.system), []).append(sample)
    for workload in WORKLOADS:
        for t in targets:
            results.rows.append(Row("inprocess", workload, t.system, "memory", t.transport, 1,
                                    summarise(samples[(workload, t.system)], by_wall=False)))


# -- suite 2: HTTP -------------------------------------------------------------------------------


def _http_targets(env: Environment, purpose: str) -> list[Target]:
    targets = [env.http(OURS, "memory", purpose)]
    if env.with_tables:
        targets.append(env.http(OURS, "tables", purpose))
    if env.with_peer:
        targets.append(env.http("peer", "memory", purpose))
    return targets


def http(env: Environment, results: Results) -> None:
    s = env.scale
    worlds = [world(t, "base", s.base_users, workers=s.clients)
              for t in _http_targets(env, "http")]
    for w in worlds:
        for workload in WORKLOADS:
            run_concurrent(w.target.make_caller, islice(_jobs(workload, w, -1), 20),
                           clients=s.clients)
    samples: dict[tuple[str, str, str], list[Sample]] = {}
    for r in range(s.http_rounds):
        log(f"HTTP: round {r + 1}/{s.http_rounds}")
        for workload in WORKLOADS:
            for w in _alternate(worlds, r):
                sample = run_concurrent(w.target.make_caller,
                                        islice(_jobs(workload, w, r), s.http_ops),
                                        clients=s.clients, budget_s=s.http_budget_s)
                samples.setdefault((workload, w.target.system, w.target.store), []).append(sample)
    for workload in WORKLOADS:
        for w in worlds:
            t = w.target
            results.rows.append(Row("http", workload, t.system, t.store, t.transport, s.clients,
                                    summarise(samples[(workload, t.system, t.store)],
                                              by_wall=True)))
    env.release("http")


# -- suite 3: growth -----------------------------------------------------------------------------


GROWTH = ("userName eq", "member add", "get group, members excluded")


def _growth_jobs(workload: str, w: World, r: int) -> Iterator[Job]:
    if workload == "Azurite point read":
        return workloads.get_jobs(_shuffled(w.ids, r))
    if workload == "userName eq":
        return workloads.lookup_jobs(_shuffled(w.names, r))
    if workload == "member add":
        return workloads.member_add_remove_jobs(w.group_id, _shuffled(w.spare_ids, r))
    return workloads.group_get_jobs(w.group_id)


def _azurite_reader(connection: str, table: str) -> Target:
    """Azurite alone: ``GET /Users/{id}`` becomes one ``get_entity`` of that user's document
    row, with no SCIM code in the way (the baseline for Table Storage growth)."""
    from azure.data.tables import TableClient

    from scim_core.store import table_keys

    client = TableClient.from_connection_string(connection, table)
    partition = table_keys.partition_key("default")

    def call(method: str, path: str, query: object = None, body: object = None
             ) -> tuple[int, bytes]:
        client.get_entity(partition, table_keys.document_key("User", path.rsplit("/", 1)[1]))
        return 200, b""

    return Target("Azurite alone", "tables", "in-process", lambda: call,
                  closers=[client.close])


def growth(env: Environment, results: Results) -> None:
    s = env.scale
    systems: list[tuple[str, Callable[[], Target], int, int]] = [
        (OURS, lambda: ours_in_process(), s.large_users, s.large_members)]
    if env.with_peer:
        systems.append(("scim2-server", peer.in_process, s.large_users, s.large_members))
    tables: list[str] = []
    if env.with_tables:
        def make_tables() -> Target:
            tables.append(table_name("growth"))
            return ours_in_process("tables", connection=env.connection, table=tables[-1])

        systems.append(("Table Storage", make_tables, s.tables_large_users,
                        s.tables_large_members))
    for label, make, large_users, large_members in systems:
        log(f"growth: seeding {label} ({s.small_users:,} and {large_users:,} users)")
        workers = s.clients if label == "Table Storage" else 1
        small = world(make(), "small", s.small_users, spare=s.spare_users, workers=workers)
        small.group_id = seed_group(small.target, "small", 0)
        large = world(make(), "large", large_users, members=large_members,
                      spare=s.spare_users, workers=workers)
        measured = list(GROWTH)
        if tables and label == "Table Storage":
            # Azurite's own point read on the same two tables, as a baseline.
            measured.append("Azurite point read")
            small.readers = _azurite_reader(env.connection, tables[0])
            large.readers = _azurite_reader(env.connection, tables[1])
        samples: dict[tuple[str, int], list[Sample]] = {}
        for r in range(-1, s.growth_rounds):  # round -1 warms up and is dropped
            if r >= 0:
                log(f"growth: {label} round {r + 1}/{s.growth_rounds}")
            for workload in measured:
                for w in _alternate([small, large], r):
                    target = w.readers if workload == "Azurite point read" else w.target
                    assert target is not None
                    sample = run_serial(
                        target.make_caller(), islice(_growth_jobs(workload, w, r), s.growth_ops),
                        budget_s=s.growth_budget_s, min_jobs=s.growth_min_ops,
                        storage_calls=target.storage_calls)
                    if r >= 0:
                        samples.setdefault((workload, w is large), []).append(sample)
        for workload in measured:
            sizes = ((f"{s.small_users:,} users", f"{large_users:,} users")
                     if workload in ("userName eq", "Azurite point read")
                     else ("0 members", f"{large_members:,} members"))
            system = "Azurite alone" if workload == "Azurite point read" else \
                large.target.system
            counted = workload != "Azurite point read" and large.target.storage_calls is not None
            results.growth.append(Growth(
                workload, system, large.target.store, *sizes,
                summarise(samples[(workload, False)], by_wall=False, counted=counted),
                summarise(samples[(workload, True)], by_wall=False, counted=counted)))
        for w in (small, large):
            w.target.close()
            if w.readers is not None:
                w.readers.close()


# -- suite 4: Entra's initial cycle --------------------------------------------------------------


def _run(target: Target, jobs: Iterator[Job], clients: int) -> Sample:
    if clients > 1:
        return run_concurrent(target.make_caller, jobs, clients=clients)
    return run_serial(target.make_caller(), jobs)


@dataclass(frozen=True)
class CycleShape:
    users: int
    groups: int
    memberships: int
    per_patch: int

    @property
    def requests(self) -> int:
        plan = workloads.membership_plan(self.users, self.groups, self.memberships)
        patches = sum(-(-len(m) // self.per_patch) for m in plan)
        return 2 * (self.users + self.groups) + patches

    def __str__(self) -> str:
        return (f"{self.users:,} users, {self.groups} groups, {self.memberships:,} memberships "
                f"({self.per_patch} per PATCH) = {self.requests:,} requests")


def entra_cycle(target: Target, tag: str, shape: CycleShape, clients: int
                ) -> tuple[Stat, dict[str, Stat]]:
    """Users (match, create), then groups (match, create), then member PATCHes."""
    user_ids: dict[int, str] = {}
    group_ids: dict[int, str] = {}
    plan = workloads.membership_plan(shape.users, shape.groups, shape.memberships)
    phases = {
        "users": _run(target, workloads.cycle_user_jobs(tag, shape.users, user_ids), clients),
        "groups": _run(target, workloads.cycle_group_jobs(tag, shape.groups, group_ids),
                       clients),
    }
    phases["members"] = _run(target, workloads.cycle_member_jobs(
        group_ids, user_ids, plan, shape.per_patch), clients)
    total = phases["users"].merge(phases["groups"]).merge(phases["members"])
    return (summarise([total], by_wall=True),
            {k: summarise([v], by_wall=True) for k, v in phases.items()})


def cycle(env: Environment, results: Results) -> None:
    s = env.scale
    targets = [ours_in_process("memory")]
    if env.with_peer:
        targets.append(peer.in_process())
    targets += _http_targets(env, "cycle")
    full = CycleShape(s.cycle_users, s.cycle_groups, s.cycle_memberships, s.members_per_patch)
    # Azurite on two shared cores manages tens of SCIM requests a second, so Table Storage
    # gets a cycle of a tenth of the size: the rate is what is compared.
    tables = CycleShape(max(1, s.cycle_users // s.tables_cycle_divisor),
                        max(1, s.cycle_groups // s.tables_cycle_divisor),
                        max(1, s.cycle_memberships // s.tables_cycle_divisor),
                        s.members_per_patch)
    for k, target in enumerate(targets):
        log(f"Entra cycle: {target.label}")
        shape = tables if target.store == "tables" else full
        clients = s.clients if target.transport == "http" else 1
        azurite_pid = env.azurite_pid if target.store == "tables" else None
        before = process_cpu_s(target.server_pid), process_cpu_s(azurite_pid)
        stat, phases = entra_cycle(target, f"cycle{k}", shape, clients)
        after = process_cpu_s(target.server_pid), process_cpu_s(azurite_pid)
        per_request = [None if b is None or a is None else (a - b) * 1e3 / stat.requests
                       for b, a in zip(before, after, strict=True)]
        if target.transport == "in-process" and stat.cpu_rps:
            per_request[0] = 1e3 / stat.cpu_rps  # this process is the server
        results.cycles.append(Cycle(target.system, target.store, target.transport, clients,
                                    str(shape), stat, phases, *per_request))
    env.release("cycle")


# -- suite 5: cold start -------------------------------------------------------------------------


def cold(env: Environment, results: Results) -> None:
    s = env.scale
    log("cold start: memory store")
    results.cold.append(Cold("memory", coldstart.measure({"SCIM_STORE": "memory"},
                                                         runs=s.cold_runs)))
    if env.with_tables:
        log("cold start: Table Storage store")
        results.cold.append(Cold("tables", coldstart.measure(
            {"SCIM_STORE": "tables", "SCIM_TABLES_CONNECTION": env.connection,
             "SCIM_TABLE_NAME": table_name("cold")}, runs=s.cold_runs)))


SUITES: dict[str, Callable[[Environment, Results], None]] = {
    "inprocess": inprocess, "http": http, "growth": growth, "cycle": cycle, "coldstart": cold,
}
