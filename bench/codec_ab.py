"""``python -m bench.codec_ab [--runs 3]``: the Entra cycle on Table Storage (Azurite) with
and without the azure-core batch codec, alternating, medians of the runs.

Each run measures the codec on and off, in turn from a different start each run: the cycle
in process, one request at a time (storage requests and this process's CPU per SCIM request,
by phase), then over HTTP with 4 clients on a fresh dev host (req/s, dev host CPU per
request). Azurite's CPU is read from /proc around each. Each cycle runs on a fresh table
after a short warm-up cycle; the in-process cycle runs in a fresh interpreter, so the
codec off really means azure-core's helpers were never replaced.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from bench import workloads
from bench.azurite import Azurite
from bench.codec import set_codec
from bench.environment import FULL, log
from bench.runner import Job, Sample, run_serial
from bench.suites import CycleShape, entra_cycle
from bench.systems import ROOT, Target, ours_http, ours_in_process, process_cpu_s

OUT = ROOT / "bench" / "results" / "codec_ab.json"
WARM_UP = CycleShape(10, 1, 20, 10)


def tables_shape(per_patch: int = FULL.members_per_patch) -> CycleShape:
    """The Table Storage cycle of ``make bench`` (a tenth of Entra's full cycle)."""
    d = FULL.tables_cycle_divisor
    return CycleShape(FULL.cycle_users // d, FULL.cycle_groups // d,
                      FULL.cycle_memberships // d, per_patch)


def _phases(tag: str, shape: CycleShape) -> Iterator[tuple[str, Iterator[Job]]]:
    users: dict[int, str] = {}
    groups: dict[int, str] = {}
    yield "users", workloads.cycle_user_jobs(tag, shape.users, users)
    yield "groups", workloads.cycle_group_jobs(tag, shape.groups, groups)
    plan = workloads.membership_plan(shape.users, shape.groups, shape.memberships)
    yield "members", workloads.cycle_member_jobs(groups, users, plan, shape.per_patch)


def _serial_cycle(target: Target, tag: str, shape: CycleShape) -> dict[str, Sample]:
    return {name: run_serial(target.make_caller(), jobs, storage_calls=target.storage_calls)
            for name, jobs in _phases(tag, shape)}


def _per_request(samples: dict[str, Sample], cpu_s: float | None) -> dict[str, Any]:
    requests = sum(s.requests for s in samples.values())
    figures: dict[str, Any] = {
        "requests": requests,
        "errors": sum(s.errors for s in samples.values()),
        "storage_per_request": sum(s.storage_calls for s in samples.values()) / requests,
        "cpu_ms": sum(s.cpu_ns for s in samples.values()) / 1e6 / requests,
        "azurite_cpu_ms": None if cpu_s is None else cpu_s * 1e3 / requests,
    }
    for name, s in samples.items():
        figures[f"{name}_storage_per_request"] = s.storage_calls / s.requests
        figures[f"{name}_cpu_ms"] = s.cpu_ns / 1e6 / s.requests
    return figures


def _new_table() -> str:
    return f"codecab{uuid.uuid4().hex[:10]}"


def _drop(azurite: Azurite, table: str) -> None:
    """Deletes a run's table, so that the next run does not measure a fuller Azurite."""
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        service.delete_table(table)


def in_process(on: bool, connection: str, table: str, azurite_pid: int, per_patch: int
               ) -> dict[str, Any]:
    """One cycle in this process (a fresh interpreter), one request at a time."""
    set_codec(on)
    target = ours_in_process("tables", connection=connection, table=table)
    _serial_cycle(target, "warm", WARM_UP)
    before = process_cpu_s(azurite_pid)
    samples = _serial_cycle(target, "cycle", tables_shape(per_patch))
    after = process_cpu_s(azurite_pid)
    target.close()
    from scim_core.store.tables import sdk_batches

    figures = _per_request(samples, None if before is None or after is None else after - before)
    figures["codec_installed"] = sdk_batches.batch_codec_installed()
    return figures


def _in_process_run(on: bool, azurite: Azurite, per_patch: int) -> dict[str, Any]:
    assert azurite.process is not None
    table = _new_table()
    done = subprocess.run(
        [sys.executable, "-m", "bench.codec_ab", "--in-process", "on" if on else "off",
         "--connection", azurite.connection_string, "--table", table,
         "--azurite-pid", str(azurite.process.pid), "--members-per-patch", str(per_patch)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    _drop(azurite, table)
    if done.returncode:
        raise RuntimeError(f"in-process run failed: {done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _http_run(on: bool, azurite: Azurite, per_patch: int, clients: int) -> dict[str, Any]:
    assert azurite.process is not None
    table = _new_table()
    target = ours_http("tables", connection=azurite.connection_string, table=table,
                       batch_codec=on)
    try:
        entra_cycle(target, "warm", WARM_UP, clients)
        before = process_cpu_s(target.server_pid), process_cpu_s(azurite.process.pid)
        total, _ = entra_cycle(target, "cycle", tables_shape(per_patch), clients)
        after = process_cpu_s(target.server_pid), process_cpu_s(azurite.process.pid)
    finally:
        target.close()
        _drop(azurite, table)
    spent = [None if b is None or a is None else (a - b) * 1e3 / total.requests
             for b, a in zip(before, after, strict=True)]
    return {"requests": total.requests, "errors": total.errors,
            "rps": total.requests * 1e9 / total.wall_ns,
            "devhost_cpu_ms": spent[0], "azurite_cpu_ms": spent[1]}


def _summary(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Median, min and max of every figure over the runs."""
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {k: [statistics.median(r[k] for r in runs), min(r[k] for r in runs),
                max(r[k] for r in runs)] for k in keys if all(r[k] is not None for r in runs)}


def _table(summary: dict[str, dict[str, dict[str, list[float]]]]) -> str:
    lines = ["| figure | codec on: median (range) | codec off: median (range) | off ÷ on |",
             "|---|---:|---:|---:|"]
    for kind in ("in_process", "http"):
        for key, (median_on, low_on, high_on) in summary["on"][kind].items():
            median_off, low_off, high_off = summary["off"][kind][key]
            ratio = f"{median_off / median_on:.2f}x" if median_on else ""
            lines.append(f"| {kind} {key} | {median_on:.3f} ({low_on:.3f}–{high_on:.3f}) | "
                         f"{median_off:.3f} ({low_off:.3f}–{high_off:.3f}) | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codec_ab", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--clients", type=int, default=FULL.clients)
    parser.add_argument("--members-per-patch", type=int, default=FULL.members_per_patch)
    parser.add_argument("--in-process", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--connection", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--azurite-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        print(json.dumps(in_process(args.in_process == "on", args.connection, args.table,
                                    args.azurite_pid, args.members_per_patch)))
        return 0
    log(f"codec A/B: {tables_shape(args.members_per_patch)}, {args.runs} runs each")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        mode: {"in_process": [], "http": []} for mode in ("on", "off")}
    with Azurite() as azurite:
        for r in range(args.runs):
            for on in ((True, False) if r % 2 == 0 else (False, True)):
                mode = "on" if on else "off"
                log(f"run {r + 1}/{args.runs}, codec {mode}")
                results[mode]["in_process"].append(
                    _in_process_run(on, azurite, args.members_per_patch))
                results[mode]["http"].append(
                    _http_run(on, azurite, args.members_per_patch, args.clients))
    summary = {mode: {kind: _summary(runs) for kind, runs in kinds.items()}
               for mode, kinds in results.items()}
    print(_table(summary))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"runs": results, "summary": summary}, indent=1))
    log(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
