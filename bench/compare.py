"""Before and after: the Table Storage Entra cycle of two revisions, alternating runs.

``python -m bench.compare OLD [--new REV] [--runs N] [--clients 4] [--workers 1]`` exports
both revisions with ``git archive`` into ``/tmp/scim-bench-<commit>`` (nothing in this
checkout changes), starts one stock Azurite, and runs the cycle of ``make bench`` on Table
Storage (200 users, 2 groups, 1,000 memberships, 10 per PATCH) over HTTP, each run on a
fresh dev host of that revision's tree (``PYTHONPATH=<tree>``, under this checkout's
``bench/counted_host.py``, so the storage requests behind the dev host are counted) and a
fresh table, the revisions taking turns (old, new, new, old, ...). It prints the medians
and writes every run to ``bench/results/compare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.azurite import Azurite
from bench.environment import FULL, QUICK, log
from bench.feed import CountedCycle, run_counted
from bench.suites import CycleShape, tables_cycle
from bench.systems import ROOT

OUT = ROOT / "bench" / "results" / "compare.json"
WARM_UP = CycleShape(10, 1, 20, 10)


def commit_of(revision: str) -> str:
    done = subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=30)
    if done.returncode:
        raise SystemExit(f"bench.compare: not a revision: {revision}")
    return done.stdout.strip()


def exported(commit: str, under: Path = Path("/tmp")) -> Path:
    """The tree of ``commit`` in ``under`` (exported once, kept for later runs)."""
    tree = under / f"scim-bench-{commit[:12]}"
    marker = tree / ".bench-commit"
    if marker.exists() and marker.read_text().strip() == commit:
        return tree
    tree.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True,
                   timeout=300)
    if archive.wait(timeout=60):
        raise SystemExit(f"bench.compare: git archive {commit} failed")
    marker.write_text(commit + "\n")
    return tree


@dataclass(frozen=True)
class Run:
    revision: str
    load: float
    """The 1-minute load average just before the run."""
    cycle: CountedCycle

    def metrics(self) -> dict[str, float | None]:
        c, requests = self.cycle.counts, self.cycle.sample.requests
        writes = c["scim_writes"] or 1
        storage = c["storage_reads"] + c["storage_writes"] + c["storage_other"]
        sample = self.cycle.sample
        return {
            "req/s": requests * 1e9 / sample.wall_ns if sample.wall_ns else 0.0,
            "storage requests per SCIM request": storage / requests,
            "storage requests per SCIM write": c["storage_writes"] / writes,
            "transactions per write": c["transactions"] / writes,
            "bytes sent to storage per SCIM request": c["bytes_out"] / requests,
            "feed row reads per write": c["feed_reads"] / writes,
            "retries per write (feed row moved)": c["feed_moved"] / writes,
            "share of writes that lost 4 or more races": c["feed_lost_4_plus"] / writes,
            "dev host CPU ms per request": _per(self.cycle.server_cpu_s, requests),
            "Azurite CPU ms per request": _per(self.cycle.azurite_cpu_s, requests),
        }


def _per(seconds: float | None, requests: int) -> float | None:
    return None if seconds is None else seconds * 1e3 / requests


def _median(values: list[float | None]) -> tuple[float, float, float] | None:
    known = [v for v in values if v is not None]
    return (statistics.median(known), min(known), max(known)) if known else None


def summary(runs: list[Run], old: str, new: str) -> list[tuple[str, Any, Any, float | None]]:
    """Per metric: the old and new (median, min, max), and new ÷ old of the medians."""
    rows = []
    for name in runs[0].metrics():
        found = [_median([r.metrics()[name] for r in runs if r.revision == rev])
                 for rev in (old, new)]
        ratio = (found[1][0] / found[0][0] if found[0] and found[1] and found[0][0]
                 else None)
        rows.append((name, found[0], found[1], ratio))
    return rows


def _cell(found: tuple[float, float, float] | None) -> str:
    if found is None:
        return ""
    digits = 0 if found[0] >= 100 else 2
    return f"{found[0]:,.{digits}f} ({found[1]:,.{digits}f}–{found[2]:,.{digits}f})"


def render(runs: list[Run], old: str, new: str, shape: CycleShape, clients: int,
           workers: int) -> str:
    count = sum(r.revision == old for r in runs)
    lines = [f"Entra cycle on Table Storage (Azurite), HTTP, {clients} clients, {workers} "
             f"worker(s): {shape}; {count} runs each, alternating; old {old[:7]}, new "
             f"{new[:7]}; median (range)", "",
             "| metric | old | new | new/old |", "|---|---:|---:|---:|"]
    for name, before, after, ratio in summary(runs, old, new):
        lines.append(f"| {name} | {_cell(before)} | {_cell(after)} | "
                     f"{'' if ratio is None else f'{ratio:.2f}'} |")
    lines += ["", "Load average (1 min) before each run: " + ", ".join(
        f"{r.revision[:7]} {r.load:.2f}" for r in runs), ""]
    return "\n".join(lines)


def compare(old: str, new: str, *, runs: int, clients: int, workers: int,
            shape: CycleShape, out: Path, under: Path = Path("/tmp"),
            progress: Callable[[str], None] = log) -> list[Run]:
    trees = {old: exported(old, under), new: exported(new, under)}
    done: list[Run] = []
    with Azurite() as azurite:
        pid = azurite.process.pid if azurite.process is not None else None

        def one(revision: str, cycle_shape: CycleShape, tag: str) -> CountedCycle:
            from azure.data.tables import TableServiceClient

            table = f"benchcompare{uuid.uuid4().hex[:10]}"
            try:
                return run_counted(azurite.connection_string, table, clients=clients,
                                   workers=workers, shape=cycle_shape, tag=tag,
                                   azurite_pid=pid, root=trees[revision])
            finally:
                with TableServiceClient.from_connection_string(
                        azurite.connection_string) as service:
                    service.delete_table(table)

        for revision in (old, new):  # compiles each tree's bytecode, warms Azurite
            one(revision, WARM_UP, "warm")
        for k in range(runs):
            for revision in ((old, new) if k % 2 == 0 else (new, old)):
                load = os.getloadavg()[0]
                progress(f"compare: run {k + 1}/{runs}, {revision[:7]} (load {load:.2f})")
                done.append(Run(revision, load, one(revision, shape, f"r{k}")))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "old": old, "new": new, "clients": clients, "workers": workers, "shape": str(shape),
        "runs": [{"revision": r.revision, "load": r.load, "metrics": r.metrics(),
                  "counts": r.cycle.counts, "phase_counts": r.cycle.phase_counts,
                  "errors": r.cycle.sample.errors, "first_error": r.cycle.sample.first_error}
                 for r in done]}, indent=2) + "\n", encoding="utf-8")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("old", help="the revision before (e.g. ce3af65)")
    parser.add_argument("--new", default="HEAD", help="the revision after (default HEAD)")
    parser.add_argument("--runs", type=int, default=4, help="runs of each revision")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, choices=range(1, 11), metavar="N")
    parser.add_argument("--quick", action="store_true", help="the --quick cycle (smaller)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    old, new = commit_of(args.old), commit_of(args.new)
    shape = tables_cycle(QUICK if args.quick else FULL)
    runs = compare(old, new, runs=args.runs, clients=args.clients, workers=args.workers,
                   shape=shape, out=args.out)
    print(render(runs, old, new, shape, args.clients, args.workers))
    failed = [r for r in runs if r.cycle.sample.errors]
    for r in failed:
        log(f"compare: {r.revision[:7]} had {r.cycle.sample.errors} errors: "
            f"{r.cycle.sample.first_error}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
