"""The activity log's cost: the Entra cycle in process over Table Storage with the log off
and on (storage requests per SCIM request, req/s), and the buffer's memory under a burst
of 10,000 requests. ``python -m bench.activity [--quick]``, or the ``activity`` suite."""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
import tracemalloc
import uuid
from typing import Any

from bench.entra_cycle import entra_cycle, tables_cycle
from bench.environment import FULL, QUICK, Environment, Scale, log
from bench.figures import Target as Goal
from bench.systems import IN_PROCESS, OURS, TOKEN, CallCounter, Target, in_process_caller

Round = tuple[float, float, float, float, float]
"""One cycle: storage requests per SCIM request, req/s, app CPU ms per request, Azurite CPU
ms per request, the activity writer thread's CPU ms per request (0 with the log off)."""

__all__ = ["activity_targets", "burst_memory", "cycle_cost", "cycle_figures", "run"]


def _target(connection: str, *, activity: bool) -> tuple[Target, Any]:
    """``ScimApi.handle`` in process on a fresh table; data and activity storage requests
    counted by one counter. Returns the target and its recorder (None when off)."""
    from scim_core import Settings, build_api
    from scim_core.activity import ActivityRecorder, NullRecorder
    from scim_core.activity.tables import (
        ACTIVITY_CLIENT_OPTIONS,
        TableActivityRows,
        activity_table_name,
    )
    from scim_core.app import activity_endpoints
    from scim_core.auth import StaticTokenSource
    from scim_core.schema import Registry
    from scim_core.store.tables import sdk_batches, table_store
    from scim_core.store.tables.client import BoundedWaitTransport, table_client

    counter = CallCounter()

    class CountingTransport(BoundedWaitTransport):  # type: ignore[misc]
        def send(self, request: Any, **kwargs: Any) -> Any:
            counter.add()
            return super().send(request, **kwargs)

    table = "bench" + uuid.uuid4().hex[:12]
    settings = Settings(store="tables", tables_connection=connection, table_name=table,
                        bearer_token=TOKEN, activity=activity)
    sdk_batches.install_batch_codec()
    store = table_store(settings, transport=CountingTransport(connection_timeout=3,
                                                              read_timeout=10))
    recorder: Any = NullRecorder()
    if activity:
        named = dataclasses.replace(settings, table_name=activity_table_name(table))
        options = {k: v for k, v in ACTIVITY_CLIENT_OPTIONS.items()
                   if k not in ("connection_timeout", "read_timeout")}
        client = table_client(named, credential=None,
                              transport=CountingTransport(connection_timeout=3, read_timeout=10),
                              **options)
        recorder = ActivityRecorder(TableActivityRows(client),
                                    endpoints=activity_endpoints(Registry.default()))
    api = build_api(settings, store=store, tokens=StaticTokenSource(TOKEN), recorder=recorder)
    call = in_process_caller(api, {"User-Agent": "Azure AD SCIM",
                                   "client-request-id": "bench"})

    def drop_tables() -> None:
        from azure.data.tables import TableServiceClient

        with TableServiceClient.from_connection_string(connection) as service:
            service.delete_table(table)
            service.delete_table(activity_table_name(table))

    target = Target(OURS, "tables", IN_PROCESS, lambda: call, closers=[drop_tables])
    target.storage_calls = lambda: counter.value
    return target, (recorder if activity else None)


def cycle_cost(connection: str, scale: Scale, rounds: int,
               azurite_pid: int | None = None) -> dict[str, Any]:
    """The cycle ``rounds`` times with the log off and on, each round a back-to-back pair
    whose order alternates (off-on, on-off, ...), so a pair shares the machine's load;
    the req/s change is the median of the pairs' ratios. CPU per request is split between
    this process (the app, writer thread included) and Azurite; medians of each setting."""
    from bench.systems import process_cpu_s

    shape = tables_cycle(scale)
    found: dict[bool, list[Round]] = {False: [], True: []}
    for r in range(rounds):
        for activity in ((False, True) if r % 2 == 0 else (True, False)):
            target, recorder = _target(connection, activity=activity)
            own, storage = time.process_time(), process_cpu_s(azurite_pid) or 0.0
            total, _ = entra_cycle(target, f"act{r}{int(activity)}", shape, 1)
            if recorder is not None:
                recorder.flush(60.0)
            own = (time.process_time() - own) * 1e3 / total.requests
            storage = ((process_cpu_s(azurite_pid) or 0.0) - storage) * 1e3 / total.requests
            assert target.storage_calls is not None
            calls = target.storage_calls()
            target.close()
            rate = total.requests / (total.wall_ns / 1e9)
            writer = 0.0 if recorder is None else \
                recorder.counters.writer_cpu_s * 1e3 / total.requests
            found[activity].append((calls / total.requests, rate, own, storage, writer))
            log(f"activity {'on ' if activity else 'off'} round {r}: {total.requests} requests, "
                f"{calls / total.requests:.3f} storage requests each, {rate:.1f} req/s, "
                f"CPU ms/request app {own:.2f} (writer {writer:.3f}) Azurite {storage:.2f}"
                + (f", {recorder.counters}" if recorder is not None else ""))
    return cycle_figures(str(shape), found[False], found[True])


def cycle_figures(cycle: str, off: list[Round], on: list[Round]) -> dict[str, Any]:
    """The suite's figures from paired rounds (``off[i]`` and ``on[i]`` ran back to back)."""

    def median(rows: list[Round], index: int) -> float:
        return statistics.median(row[index] for row in rows)

    pairs = list(zip(off, on, strict=True))
    ratios = [b[1] / a[1] for a, b in pairs]
    ratio = statistics.median(ratios)
    # CPU (app + Azurite) per request, pair by pair: steadier than req/s on a busy machine,
    # and what req/s would lose where app and storage take turns on saturated cores.
    cpu_ratios = [(a[2] + a[3]) / (b[2] + b[3]) for a, b in pairs]
    cpu_ratio = statistics.median(cpu_ratios)
    return {"cycle": cycle, "rounds": len(ratios),
            "app_cpu_ms_per_request_off": round(median(off, 2), 3),
            "app_cpu_ms_per_request_on": round(median(on, 2), 3),
            "app_cpu_ms_per_request_added": round(median(on, 2) - median(off, 2), 3),
            "azurite_cpu_ms_per_request_off": round(median(off, 3), 3),
            "azurite_cpu_ms_per_request_on": round(median(on, 3), 3),
            "storage_per_request_off": round(median(off, 0), 4),
            "storage_per_request_on": round(median(on, 0), 4),
            "storage_per_request_added": round(median(on, 0) - median(off, 0), 4),
            "req_s_off": round(median(off, 1), 1), "req_s_on": round(median(on, 1), 1),
            "req_s_ratios": [round(x, 3) for x in ratios],
            "req_s_ratio_median": round(ratio, 3),
            "req_s_change_pct": round(100.0 * (ratio - 1.0), 1),
            "writer_cpu_ms_per_request": round(median(on, 4), 3),
            "cpu_ratios": [round(x, 3) for x in cpu_ratios],
            "cpu_ratio_median": round(cpu_ratio, 3),
            "cpu_bound_change_pct": round(100.0 * (cpu_ratio - 1.0), 1)}


def activity_targets(figures: dict[str, Any] | None) -> list[Goal]:
    """Issue 24's speed targets from the suite's figures (``results.meta["activity"]``)."""
    if not figures:
        return []
    found: list[Goal] = []
    cycle = figures.get("cycle")
    if cycle:
        added = cycle["storage_per_request_added"]
        found.append(Goal("issue 24: storage requests per SCIM request, log on - off",
                            "<= +0.05", f"+{added:.3f}", added <= 0.05,
                            f"{cycle['storage_per_request_off']:.3f} -> "
                            f"{cycle['storage_per_request_on']:.3f}"))
        ratio = cycle["req_s_ratio_median"]
        found.append(Goal(
            f"issue 24: req/s with the log on / off (median of paired rounds, Azurite "
            f"{cycle.get('azurite', '?')})", ">= 0.95x",
            f"{ratio:.3f}x", ratio >= 0.95,
            f"{cycle['rounds']} pairs {cycle['req_s_ratios']}"))
        cpu = cycle["cpu_ratio_median"]
        found.append(Goal(
            "issue 24: requests per CPU second (app + Azurite), log on / off (median of "
            "pairs)", ">= 0.95x", f"{cpu:.3f}x", cpu >= 0.95,
            f"pairs {cycle['cpu_ratios']}; CPU ms/request app "
            f"{cycle['app_cpu_ms_per_request_off']:.2f} -> "
            f"{cycle['app_cpu_ms_per_request_on']:.2f} (writer thread "
            f"{cycle['writer_cpu_ms_per_request']:.2f}), Azurite "
            f"{cycle['azurite_cpu_ms_per_request_off']:.2f} -> "
            f"{cycle['azurite_cpu_ms_per_request_on']:.2f}"))
    burst = figures.get("burst")
    if burst:
        bounded = (burst["held"] == burst["capacity"]
                   and burst["buffer_mib_after_overflow"] <= 1.05 * burst["buffer_mib_at_cap"])
        found.append(Goal(
            f"issue 24: activity buffer after {burst['requests']:,} requests", "bounded at cap",
            f"{burst['buffer_mib_at_cap']:.1f} MiB at {burst['capacity']:,}", bounded,
            f"{burst['dropped_full']:,} dropped and counted; "
            f"{burst['buffer_mib_after_overflow']:.1f} MiB after"))
    return found


def burst_memory(requests: int = 10_000, extra: int = 2_000, *,
                 capacity: int = 10_000) -> dict[str, Any]:
    """The buffer's memory after ``requests`` Entra-sized POST /Users (writer asleep, so
    nothing drains), then ``extra`` more past the cap: held, dropped, bytes."""
    from bench.workloads import user_body
    from scim_core import Request, Settings, build_api
    from scim_core.activity import ActivityRecorder, MemoryActivityRows
    from scim_core.app import activity_endpoints
    from scim_core.auth import StaticTokenSource
    from scim_core.schema import Registry
    from scim_core.store import MemoryStore

    recorder = ActivityRecorder(MemoryActivityRows(),
                                endpoints=activity_endpoints(Registry.default()),
                                interval=3600.0, wake_at=10**9, capacity=capacity)
    api = build_api(Settings(store="memory", bearer_token=TOKEN), store=MemoryStore(),
                    tokens=StaticTokenSource(TOKEN), recorder=recorder)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json",
               "User-Agent": "Azure AD SCIM", "client-request-id": "burst"}
    body = user_body("burst", 0)
    request = Request("POST", "/Users", "http://127.0.0.1/scim/v2", {}, headers, body)
    response = api.handle(request)
    assert response.status == 201, response.body[:200]
    recorder.flush(10.0)

    def burst(n: int) -> None:
        for _ in range(n):
            # fresh bytes per request, as a host delivers them
            recorder.record(dataclasses.replace(request, body=bytes(bytearray(body))),
                            dataclasses.replace(response, body=bytes(bytearray(response.body))),
                            "default", None, 0.004)

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    burst(requests)
    held = tracemalloc.get_traced_memory()[0] - before
    burst(extra)
    after_cap = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    counters = recorder.counters
    return {"requests": requests + extra, "capacity": recorder.capacity,
            "held": recorder.buffered, "dropped_full": counters.dropped_full,
            "request_bytes": len(body), "response_bytes": len(response.body),
            "buffer_mib_at_cap": round(held / 2**20, 2),
            "buffer_mib_after_overflow": round(after_cap / 2**20, 2),
            "bytes_per_entry": round(held / requests)}


def _cycle_on_azurite(scale: Scale, rounds: int, *, keyed: bool) -> dict[str, Any]:
    """``cycle_cost`` on an Azurite of its own; ``keyed``: with keyed lookups, which find an
    entity by its key as Azure does (stock Azurite scans the partition on every write, so
    each activity row would cost in proportion to the day's rows already written)."""
    from bench.azurite import Azurite

    with Azurite(keyed_lookups=keyed) as azurite:
        figures = cycle_cost(azurite.connection_string, scale, rounds,
                             azurite.process.pid if azurite.process else None)
    return {**figures, "azurite": "keyed lookups" if keyed else "stock"}


def run(env: Environment, results: Any) -> None:
    """The ``activity`` suite: figures go to the log and to the JSON's meta. The cycle runs
    on an Azurite with keyed lookups (``--stock-growth``: stock), as the growth suite does."""
    figures: dict[str, Any] = {"burst": burst_memory()}
    log(f"activity burst: {figures['burst']}")
    if env.with_tables:
        figures["cycle"] = _cycle_on_azurite(env.scale, max(7, env.scale.http_rounds),
                                             keyed=env.growth_keyed)
        log(f"activity cycle: {figures['cycle']}")
    results.meta["activity"] = figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.activity", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller cycle")
    parser.add_argument("--rounds", type=int, default=7,
                        help="off/on pairs (the median of their req/s ratios)")
    parser.add_argument("--stock-azurite", action="store_true",
                        help="stock Azurite (a partition scan per write) instead of keyed lookups")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"burst": burst_memory()}
    log(f"activity burst: {figures['burst']}")
    figures["cycle"] = _cycle_on_azurite(QUICK if args.quick else FULL, args.rounds,
                                         keyed=not args.stock_azurite)
    json.dump(figures, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
