"""Smoke tests for the benchmark code at a tiny size: every suite runs; no timing is asserted."""

from __future__ import annotations

import ast
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import peer, tenants, workloads
from bench.__main__ import main
from bench.environment import TINY, Environment, tables_available
from bench.report import Results, as_json, render, targets
from bench.runner import Sample, percentile, run_serial, summarise
from bench.suites import SUITES, cold, cycle, growth, http, inprocess
from bench.systems import OURS, PEER, ours_in_process

needs_peer = pytest.mark.skipif(not peer.available(),
                                reason="scim2-server not installed (requirements-bench.txt)")
needs_tables = pytest.mark.skipif(not tables_available(),
                                  reason="scim_core.store.tables or Azurite not available")


@pytest.fixture
def env() -> Iterator[Environment]:
    """A tiny-scale environment on the memory store, with the peer when it is installed."""
    environment = Environment(TINY, with_peer=peer.available(), with_tables=False)
    yield environment
    environment.close()


def _no_errors(results: Results) -> None:
    stats = [r.stat for r in results.rows] + [c.stat for c in results.cycles]
    stats += [s for g in results.growth for s in (g.small_stat, g.large_stat)]
    assert stats
    assert [s.first_error for s in stats if s.errors] == []
    assert all(s.requests > 0 for s in stats)


def test_percentiles_and_summary() -> None:
    """Nearest-rank percentiles and the median-of-rounds rate come out as defined."""
    assert percentile([10, 20, 30, 40], 0.5) == 20
    assert percentile([10, 20, 30, 40], 0.99) == 40
    assert percentile([], 0.5) == 0
    stat = summarise([Sample([1000, 3000], wall_ns=8000), Sample([2000], wall_ns=4000)],
                     by_wall=True)
    assert (stat.requests, stat.rounds, stat.rps) == (3, 2, 250_000.0)


def test_workloads_send_what_entra_sends() -> None:
    """Seeded users are found by the userName filter, and a member add shows in the group."""
    call = ours_in_process().make_caller()
    (user_id, name), = workloads.seed_users(call, "smoke", 0, 1)
    assert workloads.total_results(*call("GET", "/Users", workloads.user_query(name), None),
                                   what="lookup") == 1
    group_id = workloads.seed_group(call, "smoke", 0, [user_id])
    status, body = call("GET", f"/Groups/{group_id}", None, None)
    assert status == 200
    assert [m["value"] for m in json.loads(body)["members"]] == [user_id]
    assert run_serial(call, workloads.cycle_user_jobs("fresh", 2, {})).errors == 0


@needs_peer
def test_peer_answers_the_same_requests() -> None:
    """scim2-server accepts the same bodies and filters, in process and over HTTP."""
    for target in (peer.in_process(), peer.http()):
        try:
            call = target.make_caller()
            (user_id, name), = workloads.seed_users(call, "smoke", 0, 1)
            found = call("GET", "/Users", workloads.user_query(name.upper()), None)
            assert workloads.total_results(*found, what="lookup") == 1
            group_id = workloads.seed_group(call, "smoke", 0, [user_id])
            status, body = call("GET", f"/Groups/{group_id}", None, None)
            assert status == 200
            assert [m["value"] for m in json.loads(body)["members"]] == [user_id]
        finally:
            target.close()


def test_inprocess_suite(env: Environment) -> None:
    """Every in-process workload runs on each system without an unexpected status."""
    results = Results()
    inprocess(env, results)
    _no_errors(results)
    assert {r.workload for r in results.rows} == {"create user", "userName eq", "get user",
                                                  "patch user", "member add"}
    assert {r.system for r in results.rows} == ({OURS, PEER} if env.with_peer else {OURS})


def test_http_suite(env: Environment) -> None:
    """The HTTP workloads run with concurrent keep-alive clients against the child servers."""
    results = Results()
    http(env, results)
    _no_errors(results)
    assert {r.clients for r in results.rows} == {TINY.clients}


def test_growth_suite(env: Environment) -> None:
    """Growth compares a small and a large data set for lookups, member adds and group reads."""
    results = Results()
    growth(env, results)
    _no_errors(results)
    assert {g.workload for g in results.growth} == {"userName eq", "member add",
                                                    "get group, members excluded"}
    assert all(g.ratio > 0 for g in results.growth)


def test_cycle_suite(env: Environment) -> None:
    """Entra's initial cycle pushes users, groups and member PATCHes in process and over HTTP."""
    results = Results()
    cycle(env, results)
    _no_errors(results)
    expected = 2 * (TINY.cycle_users + TINY.cycle_groups) + 4  # 2 groups x 6 members / 3
    assert {c.stat.requests for c in results.cycles} == {expected}
    assert set(results.cycles[0].phases) == {"users", "groups", "members"}


def test_cold_start(env: Environment) -> None:
    """A fresh process imports function_app and answers Entra's first query with 200."""
    results = Results()
    cold(env, results)
    assert [(c.store, c.result.status) for c in results.cold] == [("memory", 200)]
    assert results.cold[0].result.wall_ms > 0


def test_tenants_suite(env: Environment) -> None:
    """The tenants suite measures the steady mix with 1 and with many tenants registered,
    and the cold first request (registry read, token fetch and the request's own), with
    the same storage calls per steady request in both and no Key Vault call."""
    results = Results()
    tenants.run(env, results)
    stats = [s for t in results.tenants for s in (t.small_stat, t.large_stat)]
    assert [s.first_error for s in stats if s.errors] == [] and all(s.requests for s in stats)
    assert [(t.workload, t.large) for t in results.tenants] == [
        (w, TINY.tenants_registered) for w in (*tenants.MIX, "steady mix")]
    assert all(t.calls_ratio == 1.0 for t in results.tenants)
    mix = results.tenants[-1]
    assert (mix.small_keyvault_calls, mix.large_keyvault_calls) == (0, 0)
    assert [(c.registered, c.status, c.storage_calls, c.keyvault_calls)
            for c in results.tenant_cold] == [(1, 200, 2, 2), (TINY.tenants_registered, 200, 2, 2)]
    assert "## 6. Tenants" in render(results)
    assert as_json(results)["tenants"][-1]["calls_ratio"] == 1.0


@needs_tables
def test_table_storage_suites() -> None:
    """HTTP, growth (on a second, keyed Azurite), cycle (median of rounds), cold start and
    tenants run on the Table Storage store, and each suite deletes its tables when it is
    done."""
    from azure.data.tables import TableServiceClient

    environment = Environment(dataclasses.replace(TINY, http_rounds=2), with_peer=False,
                              with_tables=True)
    results = Results()
    try:
        for suite in (http, growth, cycle, cold, tenants.run):
            suite(environment, results)
        with TableServiceClient.from_connection_string(environment.connection) as service:
            assert [t.name for t in service.list_tables()] == []
        assert environment._growth_azurite is None
    finally:
        environment.close()
    _no_errors(results)
    assert "tables" in {r.store for r in results.rows}
    assert "tables" in {g.store for g in results.growth}
    assert [c.stat.rounds for c in results.cycles if c.store == "tables"] == [2]
    assert [c.store for c in results.cold] == ["memory", "tables"]
    assert [(c.store, c.storage_calls) for c in results.tenant_cold] == [
        ("memory", 2), ("memory", 2), ("tables", 2), ("tables", 2)]  # the copy: 1 lookup read


def _one_commit_per_write(counts: dict[str, int], writes: int) -> None:
    """Every SCIM write of the cycle committed exactly once (writes queued together share
    a transaction: group commit), and every failed transaction was a lost race for the
    feed row, resubmitted after a read of it."""
    assert counts["scim_writes"] == writes
    assert 0 < counts["transactions"] - counts["transactions_failed"] <= writes
    assert counts["transactions_failed"] == counts["feed_moved"]
    assert counts["feed_reads_writing"] >= counts["feed_moved"]
    assert counts["storage_writes"] == counts["transactions"] + counts["feed_reads_writing"]
    lost = ("feed_lost_0", "feed_lost_1", "feed_lost_2_3", "feed_lost_4_plus")
    assert counts["feed_commits"] == sum(counts[name] for name in lost) == writes


@needs_tables
def test_feed_suite() -> None:
    """The feed suite runs the Entra cycle on one tenant at each client and worker count
    with the dev host's storage traffic counted, reads a seeded feed whole with each
    reader, and sees every followed write's event; it deletes its tables."""
    from azure.data.tables import TableServiceClient

    environment = Environment(TINY, with_peer=False, with_tables=True)
    results = Results()
    try:
        SUITES["feed"](environment, results)
        with TableServiceClient.from_connection_string(environment.connection) as service:
            assert [t.name for t in service.list_tables()] == []
    finally:
        environment.close()
    assert [(c.clients, c.workers) for c in results.feed_cycles] == [
        (c, w) for w in TINY.feed_workers for c in TINY.feed_clients]
    writes = TINY.cycle_users + TINY.cycle_groups + 4  # 2 groups x 6 members / 3
    for c in results.feed_cycles:
        assert c.stat.errors == 0 and c.stat.requests == writes + TINY.cycle_users + 2
        _one_commit_per_write(c.counts, writes)
        assert c.phase_counts["members"]["scim_reads"] == 0
        assert c.retry_rate == c.counts["feed_moved"] / writes
    assert {r.reader for r in results.feed_reads} >= {"TableStore"}
    for r in results.feed_reads:
        assert (r.events, r.rounds) == (TINY.feed_events, TINY.feed_read_rounds)
        assert r.events_per_s > 0 and r.storage_per_page is not None and r.storage_per_page >= 1
    assert [(f.writes, f.seen) for f in results.feed_follow] == [
        (TINY.feed_follow_writes, TINY.feed_follow_writes)] * len(results.feed_follow)
    assert results.feed_follow and results.feed_follow[0].polls
    assert "## 7. Change feed" in render(results)
    assert as_json(results)["feed_cycles"][0]["counts"]["scim_writes"] == writes


@needs_tables
def test_paging_suite() -> None:
    """The paging suite seeds two tenants, measures the middle page at each (with equal
    storage requests: one feed read and one range), the peak RSS of a page in a
    subprocess, and lists the large tenant whole; its targets and JSON show it."""
    environment = Environment(TINY, with_peer=False, with_tables=True)
    results = Results()
    try:
        SUITES["paging"](environment, results)
    finally:
        environment.close()
    paging = results.paging
    assert paging is not None
    assert [z.users for z in paging.sizes] == [TINY.paging_small, TINY.paging_large]
    assert {z.storage_calls for z in paging.sizes} == {2}
    assert all(z.page_ms > 0 and z.peak_rss_mib > 10 for z in paging.sizes)
    assert paging.listing_users == TINY.paging_large + 1
    assert paging.listing_pages == TINY.paging_large // 100 + 1
    assert "## Paging" in render(results)
    assert {t.name for t in targets(results)} >= {
        "paging: middle page storage requests, large = small",
        "paging: full listing, last ÷ first tenth of pages"}
    assert as_json(results)["paging"]["sizes"][0]["users"] == TINY.paging_small


@needs_tables
def test_keyed_azurite_keeps_table_semantics() -> None:
    """Azurite with the keyed-lookup preload still reads, conflicts, updates and deletes by key."""
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
    from azure.data.tables import TableClient, UpdateMode

    from bench.azurite import KEYED_LOOKUPS, Azurite

    with Azurite(keyed_lookups=True) as azurite:
        assert azurite.process is not None
        cmdline = Path(f"/proc/{azurite.process.pid}/cmdline").read_bytes().split(b"\0")
        assert str(KEYED_LOOKUPS).encode() in cmdline
        table = TableClient.from_connection_string(azurite.connection_string, "keyed")
        table.create_table()
        rows = [{"PartitionKey": p, "RowKey": r, "v": f"{p}{r}"} for p in "ab" for r in "xyz"]
        table.submit_transaction([("create", e) for e in rows if e["PartitionKey"] == "a"])
        for entity in rows[3:]:
            table.create_entity(entity)
        assert table.get_entity("b", "y")["v"] == "by"
        with pytest.raises(ResourceExistsError):
            table.create_entity(rows[4])
        table.update_entity({"PartitionKey": "a", "RowKey": "y", "w": 1}, mode=UpdateMode.MERGE)
        assert table.get_entity("a", "y")["v"] == "ay" and table.get_entity("a", "y")["w"] == 1
        table.delete_entity("a", "z")
        with pytest.raises(ResourceNotFoundError):
            table.get_entity("a", "z")
        assert sorted(e["v"] for e in table.list_entities()) == ["ax", "ay", "bx", "by", "bz"]
        table.close()


def test_report_and_cli(tmp_path: Path) -> None:
    """``python -m bench --only ...`` prints the table with targets and writes the JSON."""
    out = tmp_path / "latest.json"
    assert main(["--only", "coldstart", "--no-peer", "--no-tables", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["cold_start"][0]["status"] == 200
    assert {t["name"] for t in document["targets"]} == {t.name for t in targets(Results())}
    results = Results(meta={"mode": "test"})
    assert "## Targets" in render(results)
    assert as_json(results)["rows"] == []


def _bench_imports(module: Path) -> set[str]:
    """The bench modules ``module`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "bench":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bench."):
            found.add(str(node.module).split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("bench.")}
    return found


def test_every_bench_module_is_part_of_make_bench() -> None:
    """Every module in bench/ is reached from ``python -m bench`` (what ``make bench``
    runs): no one-off harness is left beside the suites."""
    folder = Path(__file__).resolve().parents[1] / "bench"
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    reached, todo = set(), ["__main__"]
    while todo:
        name = todo.pop()
        if name in reached or name not in modules:
            continue
        reached.add(name)
        todo.extend(_bench_imports(folder / f"{name}.py"))
    assert modules - reached == set()


@needs_tables
def test_manage_suite() -> None:
    """The manage suite measures a read by id through the reader and the management API
    with equal storage requests on a warm process, and 32 long-polls of which no more than
    the bound wait together; its figures go to the JSON's meta."""
    environment = Environment(TINY, with_peer=False, with_tables=True)
    results = Results()
    try:
        SUITES["manage"](environment, results)
    finally:
        environment.close()
    figures = results.meta["manage"]
    assert figures["manage_get_user"]["storage"] == figures["reader_get_user"]["storage"] == 1
    assert 1 <= figures["long_poll_most_waiting"] <= figures["long_poll_bound"] == 4


@needs_tables
def test_latency_suite() -> None:
    """The latency suite, through the delay proxy, counts the storage requests and round
    trips of each request type (more at the added RTT than none), measures creates at each
    client and worker count, runs the Entra-like cycle, and reports issue 26's targets."""
    from bench.delay_proxy import Exchange, rounds

    assert rounds([Exchange(0.0, 1.0), Exchange(0.5, 1.5), Exchange(2.0, 3.0)]) == 2
    environment = Environment(TINY, with_peer=False, with_tables=True)
    results = Results()
    try:
        SUITES["latency"](environment, results)
    finally:
        environment.close()
    latency = results.latency
    assert latency is not None
    costs = {c.request: c for c in latency.costs}
    assert costs["POST /Users"].storage == costs["member add of 10"].rounds_rtt == 1
    assert costs["GET /Users/{id}"].storage >= costs["GET /Users/{id}"].rounds_rtt >= 1
    assert [(c.rtt_ms, c.workers, c.clients) for c in latency.creates] == [
        (2.0, 1, 1), (0.0, 1, 2), (2.0, 1, 2), (2.0, 2, 1), (2.0, 2, 2)]
    # creates queued together share a transaction (group commit): below 1 per create is fine
    assert all(c.created > 0 and c.errors == 0 and c.storage_per_create > 0
               for c in latency.creates)
    assert [(c.workers, c.requests, c.errors) for c in latency.cycles] == [
        (1, 20, 0), (2, 20, 0)]
    assert "## Latency" in render(results)
    assert sum(t.name.startswith("issue 26:") for t in targets(results)) == 7 + 1 + 3 + 2
    assert as_json(results)["latency"]["costs"][0]["storage"] >= 1


@needs_tables
def test_delay_proxy_delays_each_message_on_one_keep_alive_connection() -> None:
    """Each storage request through the delay proxy takes at least the set round trip,
    is logged once, and the client's keep-alive connection carries them all."""
    from azure.data.tables import TableClient

    from bench.azurite import Azurite
    from bench.delay_proxy import DelayProxy

    with Azurite() as azurite, DelayProxy(azurite.port) as proxy:
        client = TableClient.from_connection_string(
            proxy.connection_string(azurite.connection_string), "proxied")
        client.create_table()
        client.create_entity({"PartitionKey": "p", "RowKey": "r", "v": 1})
        proxy.set_rtt(30)
        before = proxy.count
        walls = []
        for _ in range(3):
            began = time.perf_counter()
            assert client.get_entity("p", "r")["v"] == 1
            walls.append(time.perf_counter() - began)
        client.close()
        assert proxy.count - before == 3
        assert min(walls) >= 0.030
        assert proxy.connections == 1
