"""``python -m bench [--quick] [--only NAME ...]``: run the suites, print the table, write JSON."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import codec, peer
from bench.environment import FULL, QUICK, Environment, log, tables_available
from bench.report import Results, render, targets, write_json
from bench.suites import SUITES
from bench.systems import ROOT

DEFAULT_OUT = ROOT / "bench" / "results" / "latest.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _git_revision() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, timeout=10,
                              capture_output=True, text=True, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, timeout=10,
                               capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return done.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def meta(mode: str, scale: Any, argv: list[str]) -> dict[str, Any]:
    return {
        "mode": mode, "command": " ".join(["python -m bench", *argv]),
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(), "cpu_model": _cpu_model(), "memory_gib": _memory_gib(),
        "python": platform.python_version(), "platform": platform.platform(),
        "peer_version": peer.version() if peer.available() else None,
        "revision": _git_revision(), "load_before": _load(),
        "scale": dataclasses.asdict(scale),
    }


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="smaller data sets and fewer rounds (about two minutes)")
    parser.add_argument("--only", action="append", choices=sorted(SUITES), metavar="NAME",
                        help=f"run only this suite (repeatable): {', '.join(SUITES)}")
    parser.add_argument("--no-peer", action="store_true", help="skip scim2-server")
    parser.add_argument("--no-tables", action="store_true", help="skip Table Storage (Azurite)")
    parser.add_argument("--members-per-patch", type=int, default=None,
                        help="members per PATCH in the Entra cycle (default 10)")
    parser.add_argument("--keyed-azurite", action="store_true",
                        help="Azurite finds entities by RowKey index instead of scanning the "
                             "partition, for every suite (by default only for growth)")
    parser.add_argument("--stock-growth", action="store_true",
                        help="measure Table Storage growth on stock Azurite, which scans the "
                             "partition (smaller sizes)")
    parser.add_argument("--workers", type=int, default=1, choices=range(1, 11), metavar="N",
                        help="worker processes of the dev host on Table Storage "
                             "(FUNCTIONS_WORKER_PROCESS_COUNT; the memory store keeps 1)")
    parser.add_argument("--no-batch-codec", action="store_true",
                        help="run Table Storage without the azure-core batch codec "
                             "(scim_core/store/tables/sdk_batches.py), in this process and "
                             "in the dev host")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write JSON")
    args = parser.parse_args(args_list)

    if args.no_batch_codec:
        codec.disable()
    scale = QUICK if args.quick else FULL
    if args.members_per_patch:
        scale = dataclasses.replace(scale, members_per_patch=args.members_per_patch)
    with_peer = not args.no_peer and peer.available()
    with_tables = not args.no_tables and tables_available()
    if not args.no_peer and not with_peer:
        log("scim2-server is not installed (pip install -r requirements-bench.txt); "
            "skipping the peer")
    if not args.no_tables and not with_tables:
        log("scim_core.store.tables or Azurite is not available; skipping Table Storage")
    results = Results(meta=meta("quick" if args.quick else "full", scale, args_list))
    env = Environment(scale, with_peer=with_peer, with_tables=with_tables,
                      keyed_azurite=args.keyed_azurite, workers=args.workers,
                      stock_growth=args.stock_growth and not args.keyed_azurite,
                      batch_codec=False if args.no_batch_codec else None)
    results.meta.update(with_peer=with_peer, with_tables=with_tables,
                        keyed_azurite=args.keyed_azurite, growth_keyed=env.growth_keyed,
                        workers=args.workers, batch_codec=not args.no_batch_codec)
    started = time.monotonic()
    try:
        for name in args.only or list(SUITES):
            log(f"suite {name}")
            SUITES[name](env, results)
    finally:
        env.close()
    results.meta.update(finished=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                        load_after=_load(), duration_s=round(time.monotonic() - started, 1))
    print(render(results))
    write_json(results, args.out)
    log(f"wrote {args.out} ({results.meta['duration_s']} s)")
    missed = [t for t in targets(results) if t.passed is False]
    return 1 if missed and os.environ.get("BENCH_STRICT") else 0


if __name__ == "__main__":
    raise SystemExit(main())
