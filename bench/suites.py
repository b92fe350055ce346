"""The eight suites: in process, HTTP, growth, Entra's initial cycle, cold start, tenants
(bench/tenants.py), the change feed (bench/feed.py) and paging (bench/paging.py)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence
from itertools import islice

from bench import activity, coldstart, manage, peer, tenants, workloads
from bench.entra_cycle import CycleShape, entra_cycle, tables_cycle
from bench.environment import Environment, World, log, seed_group, world
from bench.feed import run as run_feed
from bench.http_load import run_concurrent
from bench.report import Cold, Cycle, Growth, Results, Row
from bench.runner import Job, Sample, run_serial, summarise
from bench.systems import OURS, Target, ours_in_process, process_cpu_s

WORKLOADS = ("create user", "userName eq", "get user", "patch user", "member add")


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

    from scim_core.store.tables import keys as table_keys

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
            tables.append(env.table("growth"))
            return ours_in_process("tables", connection=env.growth_connection,
                                   table=tables[-1])

        keyed = env.growth_keyed
        systems.append(("Table Storage", make_tables,
                        s.large_users if keyed else s.tables_large_users,
                        s.large_members if keyed else s.tables_large_members))
    for label, make, large_users, large_members in systems:
        log(f"growth: seeding {label} ({s.small_users:,} and {large_users:,} users)")
        workers = s.clients if label == "Table Storage" else 1
        small = world(make(), "small", s.small_users, spare=s.spare_users, workers=workers)
        large = world(make(), "large", large_users, members=large_members,
                      spare=s.spare_users, workers=workers)
        # The group of 0 sits beside the group of 20,000 in the large world, so a member add
        # or group read compares group sizes alone, not the size of the tenant around them.
        empty = dataclasses.replace(large, group_id=seed_group(large.target, "empty", 0))
        measured = list(GROWTH)
        if tables and label == "Table Storage":
            # Azurite's own point read on the same two tables, as a baseline.
            measured.append("Azurite point read")
            small.readers = _azurite_reader(env.growth_connection, tables[0])
            large.readers = _azurite_reader(env.growth_connection, tables[1])
        samples: dict[tuple[str, int], list[Sample]] = {}
        for r in range(-1, s.growth_rounds):  # round -1 warms up and is dropped
            if r >= 0:
                log(f"growth: {label} round {r + 1}/{s.growth_rounds}")
            for workload in measured:
                by_users = workload in ("userName eq", "Azurite point read")
                for w in _alternate([small if by_users else empty, large], r):
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
    env.release("growth")


# -- suite 4: Entra's initial cycle --------------------------------------------------------------


def cycle(env: Environment, results: Results) -> None:
    s = env.scale
    targets = [ours_in_process("memory")]
    if env.with_peer:
        targets.append(peer.in_process())
    targets += _http_targets(env, "cycle")
    full = CycleShape(s.cycle_users, s.cycle_groups, s.cycle_memberships, s.members_per_patch)
    tables = tables_cycle(s)
    for k, target in enumerate(targets):
        log(f"Entra cycle: {target.label}")
        shape = tables if target.store == "tables" else full
        clients = s.clients if target.transport == "http" else 1
        azurite_pid = env.azurite_pid if target.store == "tables" else None
        # The short Table Storage cycle is a few seconds on a shared machine: it runs
        # http_rounds times, each on a fresh dev host and table, and reports the median.
        rounds = s.http_rounds if target.store == "tables" else 1
        totals: list[Sample] = []
        phases: dict[str, list[Sample]] = {}
        cpu: list[float | None] = [0.0, 0.0]  # server, Azurite
        for r in range(rounds):
            if r:
                target = env.http(OURS, "tables", f"cycle{r}")
            before = process_cpu_s(target.server_pid), process_cpu_s(azurite_pid)
            total, parts = entra_cycle(target, f"cycle{k}-{r}", shape, clients)
            after = process_cpu_s(target.server_pid), process_cpu_s(azurite_pid)
            if r:
                env.release(f"cycle{r}")
            totals.append(total)
            for name, phase in parts.items():
                phases.setdefault(name, []).append(phase)
            for i, (b, a) in enumerate(zip(before, after, strict=True)):
                spent = cpu[i]
                cpu[i] = None if spent is None or b is None or a is None else spent + a - b
        requests = sum(t.requests for t in totals)
        per_request = [None if c is None else c * 1e3 / requests for c in cpu]
        if clients == 1 and totals[0].cpu_ns and requests:
            per_request[0] = sum(t.cpu_ns for t in totals) / 1e6 / requests  # this process
        results.cycles.append(Cycle(
            target.system, target.store, target.transport, clients, str(shape),
            summarise(totals, by_wall=True),
            {name: summarise(samples, by_wall=True) for name, samples in phases.items()},
            *per_request))
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
             "SCIM_TABLE_NAME": env.table("cold")}, runs=s.cold_runs)))
        env.release("cold")


# -- suite 7: the change feed (bench/feed.py) ----------------------------------------------------


def change_feed(env: Environment, results: Results) -> None:
    """The change feed suite: Entra's cycle with the feed read alongside."""
    run_feed(env, results)


def paging(env: Environment, results: Results) -> None:
    """The paging suite (bench/paging.py)."""
    from bench.paging import run

    run(env, results)


def latency(env: Environment, results: Results) -> None:
    """The latency suite (bench/latency.py): Table Storage behind a delay proxy."""
    from bench.latency import run

    run(env, results)


SUITES: dict[str, Callable[[Environment, Results], None]] = {
    "inprocess": inprocess, "http": http, "growth": growth, "cycle": cycle, "coldstart": cold,
    "tenants": tenants.run, "feed": change_feed, "activity": activity.run,
    "paging": paging, "manage": manage.run, "latency": latency,
}
