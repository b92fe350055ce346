"""Benchmark results: the rows each suite adds, the targets, the printed table and the JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.activity import activity_targets
from bench.coldstart import ColdStart
from bench.figures import Target as Target
from bench.figures import table as _table
from bench.latency import LatencyResult, latency_targets, render_latency
from bench.runner import Stat
from bench.systems import OURS, PEER


@dataclass(frozen=True)
class Row:
    """One workload on one system (suites 1 and 2)."""

    suite: str
    workload: str
    system: str
    store: str
    transport: str
    clients: int
    stat: Stat


@dataclass(frozen=True)
class Growth:
    """The same workload on a small and a large data set (suite 3)."""

    workload: str
    system: str
    store: str
    small: str
    large: str
    small_stat: Stat
    large_stat: Stat

    @property
    def ratio(self) -> float:
        return self.large_stat.p50_us / self.small_stat.p50_us if self.small_stat.p50_us else 0.0

    @property
    def cpu_ratio(self) -> float:
        """CPU time per request in this process, large ÷ small: the part that is ours when
        the store is a separate server."""
        small, large = self.small_stat.cpu_rps, self.large_stat.cpu_rps
        return small / large if large else 0.0


@dataclass(frozen=True)
class Cycle:
    """Entra's initial cycle pushed at one system (suite 4)."""

    system: str
    store: str
    transport: str
    clients: int
    shape: str
    stat: Stat
    phases: dict[str, Stat]
    server_cpu_ms: float | None = None
    """CPU time of the server process per request (HTTP runs)."""
    azurite_cpu_ms: float | None = None
    """CPU time of Azurite per request (Table Storage runs)."""


@dataclass(frozen=True)
class Cold:
    store: str
    result: ColdStart


@dataclass(frozen=True)
class TenantRow:
    """A steady request in one tenant with 1 and with many tenants registered (suite 6)."""

    workload: str
    store: str
    small: int
    large: int
    small_stat: Stat
    large_stat: Stat
    small_keyvault_calls: int | None = None
    """Key Vault calls made while the steady requests were measured (the mix row only)."""
    large_keyvault_calls: int | None = None

    @property
    def ratio(self) -> float:
        return self.large_stat.p50_us / self.small_stat.p50_us if self.small_stat.p50_us else 0.0

    @property
    def calls_ratio(self) -> float | None:
        small = self.small_stat.storage_calls_per_request
        large = self.large_stat.storage_calls_per_request
        if small is None or large is None:
            return None
        return large / small if small else (1.0 if large == small else float("inf"))


@dataclass(frozen=True)
class TenantCold:
    """The first request of a tenant on an API with empty registry and token caches."""

    store: str
    registered: int
    latency_us: float
    storage_calls: float
    keyvault_calls: float
    status: int
    runs: int


@dataclass(frozen=True)
class FeedCycle:
    """The Entra cycle mix on one tenant over HTTP, with the dev host's storage traffic
    counted (suite 7; ``counts`` are ``bench.counted_host.FIELDS`` summed over rounds)."""

    clients: int
    workers: int
    shape: str
    stat: Stat
    counts: dict[str, int]
    phase_counts: dict[str, dict[str, int]]
    server_cpu_ms: float | None = None
    azurite_cpu_ms: float | None = None

    def per_write(self, name: str, phase: str | None = None) -> float:
        counts = self.counts if phase is None else self.phase_counts[phase]
        return counts[name] / counts["scim_writes"] if counts["scim_writes"] else 0.0

    @property
    def storage_per_request(self) -> float:
        c = self.counts
        scim = c["scim_reads"] + c["scim_writes"]
        return (c["storage_reads"] + c["storage_writes"] + c["storage_other"]) / scim \
            if scim else 0.0

    @property
    def retry_rate(self) -> float:
        """Transactions resubmitted because the feed row had moved, per SCIM write."""
        return self.per_write("feed_moved")


@dataclass(frozen=True)
class FeedRead:
    """Reading a whole feed from the start, pages of ``page`` events (suite 7)."""

    reader: str
    events: int
    page: int
    rounds: int
    events_per_s: float
    best_events_per_s: float
    page_p50_ms: float
    page_p95_ms: float
    storage_per_page: float | None
    cpu_ms_per_1000: float
    """This process's CPU time per 1,000 events."""
    azurite_cpu_ms_per_1000: float | None


@dataclass(frozen=True)
class FeedFollow:
    """From a write's HTTP response to a polling follower yielding its event (suite 7)."""

    reader: str
    writes: int
    seen: int
    poll_s: float
    p50_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    polls: int | None
    """Reads the follower made (counted for the TableStore poller only)."""


@dataclass
class PagingSize:
    users: int
    page_ms: float
    """Median time of the middle page, after the page before it."""
    storage_calls: float
    """Storage requests of that page (the same every round)."""
    peak_rss_mib: float
    """Peak RSS of a fresh process serving the middle page (a jump)."""


@dataclass
class PagingResult:
    sizes: list[PagingSize] = field(default_factory=list)
    listing_users: int = 0
    listing_pages: int = 0
    listing_s: float = 0.0
    first_tenth_ms: float = 0.0
    last_tenth_ms: float = 0.0

    @property
    def time_ratio(self) -> float:
        return self.sizes[-1].page_ms / self.sizes[0].page_ms

    @property
    def rss_ratio(self) -> float:
        return self.sizes[-1].peak_rss_mib / self.sizes[0].peak_rss_mib

    @property
    def flatness(self) -> float:
        return self.last_tenth_ms / self.first_tenth_ms if self.first_tenth_ms else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"sizes": [s.__dict__ for s in self.sizes], "time_ratio": self.time_ratio,
                "rss_ratio": self.rss_ratio, "listing_users": self.listing_users,
                "listing_pages": self.listing_pages, "listing_s": self.listing_s,
                "first_tenth_ms": self.first_tenth_ms, "last_tenth_ms": self.last_tenth_ms,
                "flatness": self.flatness}


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    growth: list[Growth] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    cold: list[Cold] = field(default_factory=list)
    tenants: list[TenantRow] = field(default_factory=list)
    tenant_cold: list[TenantCold] = field(default_factory=list)
    feed_cycles: list[FeedCycle] = field(default_factory=list)
    feed_reads: list[FeedRead] = field(default_factory=list)
    feed_follow: list[FeedFollow] = field(default_factory=list)
    paging: PagingResult | None = None
    latency: LatencyResult | None = None

    def row(self, suite: str, workload: str, system: str, store: str = "memory"
            ) -> Row | None:
        return next((r for r in self.rows if (r.suite, r.workload, r.system, r.store)
                     == (suite, workload, system, store)), None)

    def peer_ratio(self, row: Row) -> float | None:
        if row.system != OURS or row.store != "memory":
            return None
        peer = self.row(row.suite, row.workload, PEER)
        return row.stat.rps / peer.stat.rps if peer and peer.stat.rps else None


# -- targets ------------------------------------------------------------------------------------


def targets(results: Results) -> list[Target]:
    found: list[Target] = []
    for workload in ("create user", "userName eq"):
        ours, peer = results.row("inprocess", workload, OURS), results.row("inprocess",
                                                                            workload, PEER)
        ratio = ours.stat.rps / peer.stat.rps if ours and peer and peer.stat.rps else None
        found.append(Target(f"in-process {workload} req/s vs scim2-server", ">= 3.0x",
                            "-" if ratio is None else f"{ratio:.1f}x",
                            None if ratio is None else ratio >= 3.0))
    baseline = next((g for g in results.growth if g.system == "Azurite alone"), None)
    for workload in ("userName eq", "member add"):
        for store in ("memory", "tables"):
            growth = next((g for g in results.growth if (g.workload, g.system, g.store)
                           == (workload, OURS, store)), None)
            note = ""
            if growth is not None and store == "tables" and baseline is not None:
                calls = [s.storage_calls_per_request for s in (growth.small_stat,
                                                               growth.large_stat)]
                note = (f"Azurite's own point read: {baseline.ratio:.2f}x; "
                        if workload == "userName eq" else "both groups in one tenant; ")
                note += f"storage calls per request {calls[0]:.1f} -> {calls[1]:.1f}"
            found.append(Target(f"{workload} growth, large ÷ small ({store})", "<= 1.5x",
                                "-" if growth is None else
                                f"{growth.ratio:.2f}x ({growth.small} -> {growth.large})",
                                None if growth is None else growth.ratio <= 1.5, note))
    cycle = next((c for c in results.cycles if (c.system, c.store, c.transport)
                  == (OURS, "tables", "http")), None)
    note = ""
    if cycle is not None and cycle.server_cpu_ms is not None:
        note = f"CPU per request: dev host {cycle.server_cpu_ms:.1f} ms"
        if cycle.azurite_cpu_ms is not None:
            note += f", Azurite {cycle.azurite_cpu_ms:.1f} ms"
    found.append(Target(f"HTTP req/s, Table Storage on Azurite, {cycle.clients if cycle else 4} "
                        "clients (Entra cycle mix)", ">= 250/s",
                        "-" if cycle is None else f"{cycle.stat.rps:.0f}/s",
                        None if cycle is None else cycle.stat.rps >= 250, note))
    cold = next((c for c in results.cold if c.store == "memory"), None)
    found.append(Target("cold start: import function_app + first request (memory)", "< 1000 ms",
                        "-" if cold is None else f"{cold.result.wall_ms:.0f} ms",
                        None if cold is None else cold.result.wall_ms < 1000))
    for store in ("memory", "tables"):
        mix = next((t for t in results.tenants if (t.workload, t.store)
                    == ("steady mix", store)), None)
        sizes = "" if mix is None else f" ({mix.small:,} -> {mix.large:,} tenants)"
        found.append(Target(f"tenants: steady p50, many ÷ 1 tenant ({store})", "<= 1.1x",
                            "-" if mix is None else f"{mix.ratio:.2f}x{sizes}",
                            None if mix is None else mix.ratio <= 1.1))
        call_ratio = None if mix is None else mix.calls_ratio
        note = "" if mix is None else (
            f"{mix.small_stat.storage_calls_per_request:.2f} -> "
            f"{mix.large_stat.storage_calls_per_request:.2f} per request; Key Vault calls "
            f"{mix.small_keyvault_calls} -> {mix.large_keyvault_calls}")
        found.append(Target(f"tenants: steady storage calls, many ÷ 1 tenant ({store})",
                            "<= 1.1x", "-" if call_ratio is None else f"{call_ratio:.2f}x",
                            None if call_ratio is None else call_ratio <= 1.1, note))
    found += paging_targets(results.paging)
    found += latency_targets(results.latency)
    found += activity_targets(results.meta.get("activity"))
    return found


def paging_targets(paging: PagingResult | None) -> list[Target]:
    """The paging suite's targets (bench/paging.py)."""
    if paging is None or len(paging.sizes) < 2:
        return []
    small, large = paging.sizes[0], paging.sizes[-1]
    sizes = f"({small.users:,} -> {large.users:,} users)"
    return [
        Target("paging: middle page time, large ÷ small", "<= 1.2x",
               f"{paging.time_ratio:.2f}x {sizes}", paging.time_ratio <= 1.2,
               f"{small.page_ms:.1f} -> {large.page_ms:.1f} ms"),
        Target("paging: middle page storage requests, large = small", "equal",
               f"{small.storage_calls:g} -> {large.storage_calls:g}",
               small.storage_calls == large.storage_calls),
        Target("paging: peak RSS of a 100-user page, large ÷ small", "<= 1.2x",
               f"{paging.rss_ratio:.2f}x {sizes}", paging.rss_ratio <= 1.2,
               f"{small.peak_rss_mib:.1f} -> {large.peak_rss_mib:.1f} MiB"),
        Target("paging: full listing, last ÷ first tenth of pages", "<= 1.2x (linear)",
               f"{paging.flatness:.2f}x", paging.flatness <= 1.2,
               f"{paging.listing_users:,} users in {paging.listing_pages:,} pages, "
               f"{paging.listing_s:.1f} s; {paging.first_tenth_ms:.1f} -> "
               f"{paging.last_tenth_ms:.1f} ms per page"),
    ]


# -- the table ----------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _us(value: float) -> str:
    return f"{value / 1000:,.1f} ms" if value >= 10_000 else f"{value:,.0f} µs"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f} ms"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}x"


def _errors(stat: Stat) -> str:
    return f"  ERRORS: {stat.errors} ({stat.first_error})" if stat.errors else ""


def render(results: Results) -> str:
    m = results.meta
    out = [f"# SCIM benchmark ({m.get('mode', '?')} run, {m.get('finished', '')})", "",
           f"Machine: {m.get('cpus')} CPUs ({m.get('cpu_model', '?')}), {m.get('memory_gib')} GiB, "
           f"Python {m.get('python')}; scim2-server {m.get('peer_version') or 'not installed'}; "
           f"load average {m.get('load_before')} before, {m.get('load_after')} after.", ""]
    if m.get("keyed_azurite"):
        out[-1:] = ["Azurite ran with keyed lookups (--keyed-azurite): its point reads and "
                    "writes use the RowKey index instead of scanning the partition.", ""]
    elif m.get("growth_keyed") and m.get("with_tables"):
        out[-1:] = ["Table Storage growth ran on a second Azurite with keyed lookups: its point "
                    "reads and writes use the RowKey index, as Azure finds an entity by its "
                    "key, instead of scanning the partition (--stock-growth: stock Azurite).",
                    ""]
    if int(m.get("workers") or 1) > 1:
        out[-1:] = [f"The dev host on Table Storage ran {m['workers']} worker processes "
                    "(--workers, FUNCTIONS_WORKER_PROCESS_COUNT); its CPU figures add them up.",
                    ""]
    errors: list[str] = []
    for suite, title in (("inprocess", "1. In process (no HTTP), memory store"),
                         ("http", "2. HTTP (dev host / WSGI server in a child process), "
                                  "keep-alive clients")):
        rows = [r for r in results.rows if r.suite == suite]
        if not rows:
            continue
        rounds = max(r.stat.rounds for r in rows)
        out += [f"## {title}: median of {rounds} rounds", ""]
        table = []
        for r in rows:
            cells = [r.workload, r.system, r.store if suite == "http" else r.transport]
            if suite == "http":
                cells.append(str(r.clients))
            cells += [_n(r.stat.rps), _us(r.stat.p50_us), _us(r.stat.p95_us),
                      _us(r.stat.p99_us), f"{r.stat.requests:,}",
                      _ratio(results.peer_ratio(r))]
            table.append(cells)
            if r.stat.errors:
                errors.append(f"{suite} {r.workload} {r.system} {r.store}:{_errors(r.stat)}")
        headers = ["workload", "system", "store" if suite == "http" else "transport"]
        headers += ["clients"] if suite == "http" else []
        headers += ["req/s", "p50", "p95", "p99", "requests", "vs peer"]
        out += [*_table(headers, table), ""]
    if results.growth:
        out += ["## 3. Growth: p50 latency on the large data set ÷ on the small one (in process)",
                ""]
        table = []
        for g in results.growth:
            calls = ""
            if g.small_stat.storage_calls_per_request is not None and \
                    g.large_stat.storage_calls_per_request is not None:
                calls = (f"{g.small_stat.storage_calls_per_request:.1f} -> "
                         f"{g.large_stat.storage_calls_per_request:.1f}")
            table.append([g.workload, g.system, g.store, f"{g.small} -> {g.large}",
                          _us(g.small_stat.p50_us), _us(g.large_stat.p50_us),
                          f"{g.ratio:.2f}x", f"{g.cpu_ratio:.2f}x", calls,
                          f"{g.small_stat.requests + g.large_stat.requests:,}"])
        out += [*_table(["workload", "system", "store", "sizes", "p50 small", "p50 large",
                         "growth", "CPU growth", "storage calls/req", "requests"], table), ""]
        errors += [f"growth {g.workload} {g.system} {g.store}:{_errors(s)}"
                   for g in results.growth for s in (g.small_stat, g.large_stat) if s.errors]
    if results.cycles:
        shape = results.cycles[0].shape
        out += [f"## 4. Entra initial cycle: {shape}", ""]
        notes = [f"{c.system} {c.store} {c.transport}: {c.shape}"
                 + (f", median of {c.stat.rounds} rounds" if c.stat.rounds > 1 else "")
                 for c in results.cycles if c.shape != shape]
        table = []
        for c in results.cycles:
            peer = next((p for p in results.cycles if p.system == PEER
                         and p.transport == c.transport), None)
            ratio = (c.stat.rps / peer.stat.rps
                     if c.system == OURS and c.store == "memory" and peer else None)
            table.append([c.system, c.store, c.transport, str(c.clients),
                          f"{c.stat.wall_s:,.1f} s", f"{c.stat.requests:,}", _n(c.stat.rps),
                          _us(c.stat.p50_us), _us(c.stat.p99_us), _ms(c.server_cpu_ms),
                          _ms(c.azurite_cpu_ms), _ratio(ratio)])
            if c.stat.errors:
                errors.append(f"cycle {c.system} {c.store} {c.transport}:{_errors(c.stat)}")
        out += [*_table(["system", "store", "transport", "clients", "total", "requests",
                         "req/s", "p50", "p99", "server CPU/req", "Azurite CPU/req",
                         "vs peer"], table), ""]
        if notes:
            out += ["Smaller cycle for " + "; ".join(notes) + ".", ""]
    if results.cold:
        runs = results.cold[0].result.runs
        out += [f"## 5. Cold start: fresh interpreter, import function_app, first request "
                f"(median of {runs})", ""]
        table = [[c.store, f"{c.result.wall_ms:,.0f} ms", f"{c.result.best_ms:,.0f} ms",
                  f"{c.result.import_ms:,.0f} ms", f"{c.result.first_request_ms:,.0f} ms",
                  str(c.result.status)] for c in results.cold]
        out += [*_table(["store", "wall", "best", "import", "first request", "status"], table),
                ""]
    if results.tenants:
        rounds = max(t.small_stat.rounds for t in results.tenants if t.workload != "steady mix")
        out += [f"## 6. Tenants: a steady request in one tenant, 1 vs {results.tenants[0].large:,} "
                f"tenants registered (in process, median of {rounds} rounds)", ""]
        table = []
        for t in results.tenants:
            per_req = [x.storage_calls_per_request for x in (t.small_stat, t.large_stat)]
            table.append([t.workload, t.store, _us(t.small_stat.p50_us),
                          _us(t.large_stat.p50_us), f"{t.ratio:.2f}x",
                          "" if per_req[0] is None or per_req[1] is None
                          else f"{per_req[0]:.2f} -> {per_req[1]:.2f}",
                          "" if t.calls_ratio is None else f"{t.calls_ratio:.2f}x",
                          "" if t.small_keyvault_calls is None else
                          f"{t.small_keyvault_calls} -> {t.large_keyvault_calls}",
                          f"{t.small_stat.requests + t.large_stat.requests:,}"])
            errors += [f"tenants {t.workload} {t.store}:{_errors(x)}"
                       for x in (t.small_stat, t.large_stat) if x.errors]
        out += [*_table(["workload", "store", "p50, 1", "p50, many", "ratio",
                         "storage calls/req", "calls ratio", "Key Vault calls", "requests"],
                        table, left=2), ""]
    if results.tenant_cold:
        runs = results.tenant_cold[0].runs
        out += [f"First request of a tenant with cold caches (userName eq; registry read, "
                f"token fetch and the request's own; median of {runs} fresh APIs):", ""]
        table = [[c.store, f"{c.registered:,}", _us(c.latency_us), f"{c.storage_calls:.0f}",
                  f"{c.keyvault_calls:.0f}", str(c.status)] for c in results.tenant_cold]
        out += [*_table(["store", "tenants", "latency", "storage calls", "Key Vault calls",
                         "status"], table, left=2), ""]
    out += _feed_section(results, errors)
    if results.paging is not None and results.paging.sizes:
        p = results.paging
        out += ["## Paging: an unfiltered page by startIndex (count 100), Table Storage", "",
                "On Azurite with keyed lookups and RowKey ranges (bench/azurite_ranges.js). "
                "The middle page follows the page before it; peak RSS is a new process "
                "serving the middle page alone (a jump: it reads the keys before it).", ""]
        table = [[f"{z.users:,}", f"{z.page_ms:.1f} ms", f"{z.storage_calls:g}",
                  f"{z.peak_rss_mib:.1f} MiB"] for z in p.sizes]
        out += [*_table(["users", "middle page", "storage requests", "peak RSS"], table,
                        left=1), "",
                f"Full listing of {p.listing_users:,} users in {p.listing_pages:,} pages: "
                f"{p.listing_s:.1f} s; median page {p.first_tenth_ms:.1f} ms in the first "
                f"tenth, {p.last_tenth_ms:.1f} ms in the last.", ""]
    out += render_latency(results.latency, errors)
    out += ["## Targets", ""]
    table = [[t.name, t.goal, t.measured,
              "-" if t.passed is None else ("PASS" if t.passed else "MISS"), t.note]
             for t in targets(results)]
    out += [*_table(["target", "goal", "measured", "result", "note"], table, left=5), ""]
    if errors:
        out += ["## Errors (these figures are not valid)", "", *errors, ""]
    return "\n".join(out)


def _feed_section(results: Results, errors: list[str]) -> list[str]:
    if not (results.feed_cycles or results.feed_reads or results.feed_follow):
        return []
    out = ["## 7. Change feed (Table Storage on Azurite)", ""]
    if results.feed_cycles:
        first = results.feed_cycles[0]
        out += [f"Entra cycle mix over HTTP on one tenant: {first.shape}; median of "
                f"{first.stat.rounds} rounds, each on a fresh dev host and table. Storage "
                "requests counted in the dev host; a retry is a transaction resubmitted "
                "because another writer moved the feed row.", ""]
        table = []
        for c in results.feed_cycles:
            table.append([str(c.clients), str(c.workers), _n(c.stat.rps), _us(c.stat.p50_us),
                          _us(c.stat.p99_us), f"{c.storage_per_request:.2f}",
                          f"{c.per_write('storage_writes'):.2f}",
                          f"{c.per_write('transactions'):.2f}",
                          f"{c.per_write('feed_reads_writing'):.2f}", f"{c.retry_rate:.2f}",
                          f"{c.per_write('feed_moved', 'members'):.2f}",
                          f"{c.per_write('feed_lost_4_plus'):.1%}",
                          _ms(c.server_cpu_ms), _ms(c.azurite_cpu_ms)])
            if c.stat.errors:
                errors.append(f"feed cycle {c.clients} clients {c.workers} workers:"
                              f"{_errors(c.stat)}")
        out += [*_table(["clients", "workers", "req/s", "p50", "p99", "storage/req",
                         "storage/write", "transactions/write", "feed reads/write",
                         "retries/write", "retries/write (members)", "lost ≥ 4 races",
                         "dev host CPU/req",
                         "Azurite CPU/req"], table, left=2), ""]
    if results.feed_reads:
        first_read = results.feed_reads[0]
        out += [f"Reading a feed of {first_read.events:,} events from the start, pages of "
                f"{first_read.page:,} (median of {first_read.rounds} reads):", ""]
        table = [[r.reader, _n(r.events_per_s), _n(r.best_events_per_s),
                  _ms(r.page_p50_ms), _ms(r.page_p95_ms),
                  "" if r.storage_per_page is None else f"{r.storage_per_page:.2f}",
                  _ms(r.cpu_ms_per_1000), _ms(r.azurite_cpu_ms_per_1000)]
                 for r in results.feed_reads]
        out += [*_table(["reader", "events/s", "best", "page p50", "page p95",
                         "storage/page", "our CPU/1,000", "Azurite CPU/1,000"], table,
                        left=1), ""]
    if results.feed_follow:
        f = results.feed_follow[0]
        out += [f"Follow latency, from a write's HTTP response to a follower polling every "
                f"{f.poll_s:g} s (at once again after a full page) yielding its event; "
                f"{f.writes} writes:", ""]
        table = [[x.reader, f"{x.seen}", "" if x.polls is None else f"{x.polls:,}",
                  _ms(x.p50_ms), _ms(x.p95_ms), _ms(x.min_ms), _ms(x.max_ms)]
                 for x in results.feed_follow]
        out += [*_table(["follower", "seen", "polls", "p50", "p95", "min", "max"], table,
                        left=1), ""]
    return out


def as_json(results: Results) -> dict[str, Any]:
    def stat(s: Stat) -> dict[str, object]:
        return s.as_dict()

    def row(r: Row) -> dict[str, Any]:
        return {"suite": r.suite, "workload": r.workload, "system": r.system,
                "store": r.store, "transport": r.transport, "clients": r.clients,
                "vs_peer": results.peer_ratio(r), **stat(r.stat)}

    return {
        "meta": results.meta,
        "rows": [row(r) for r in results.rows],
        "growth": [{"workload": g.workload, "system": g.system, "store": g.store,
                    "small": g.small, "large": g.large, "ratio": round(g.ratio, 3),
                    "cpu_ratio": round(g.cpu_ratio, 3),
                    "small_stat": stat(g.small_stat), "large_stat": stat(g.large_stat)}
                   for g in results.growth],
        "cycles": [{"system": c.system, "store": c.store, "transport": c.transport,
                    "clients": c.clients, "shape": c.shape, **stat(c.stat),
                    "server_cpu_ms_per_request": c.server_cpu_ms,
                    "azurite_cpu_ms_per_request": c.azurite_cpu_ms,
                    "phases": {k: stat(v) for k, v in c.phases.items()}}
                   for c in results.cycles],
        "cold_start": [{"store": c.store, **c.result.as_dict()} for c in results.cold],
        "tenants": [{"workload": t.workload, "store": t.store, "small": t.small,
                     "large": t.large, "ratio": round(t.ratio, 3),
                     "calls_ratio": None if t.calls_ratio is None else round(t.calls_ratio, 3),
                     "small_keyvault_calls": t.small_keyvault_calls,
                     "large_keyvault_calls": t.large_keyvault_calls,
                     "small_stat": stat(t.small_stat), "large_stat": stat(t.large_stat)}
                    for t in results.tenants],
        "tenant_cold": [c.__dict__ for c in results.tenant_cold],
        "feed_cycles": [{"clients": c.clients, "workers": c.workers, "shape": c.shape,
                         **stat(c.stat), "counts": c.counts, "phase_counts": c.phase_counts,
                         "storage_per_request": round(c.storage_per_request, 3),
                         "storage_per_write": round(c.per_write("storage_writes"), 3),
                         "retry_rate": round(c.retry_rate, 3),
                         "server_cpu_ms_per_request": c.server_cpu_ms,
                         "azurite_cpu_ms_per_request": c.azurite_cpu_ms}
                        for c in results.feed_cycles],
        "feed_reads": [r.__dict__ for r in results.feed_reads],
        "feed_follow": [f.__dict__ for f in results.feed_follow],
        "paging": None if results.paging is None else results.paging.as_dict(),
        "latency": None if results.latency is None else results.latency.as_dict(),
        "targets": [t.__dict__ for t in targets(results)],
    }


def write_json(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_json(results), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
