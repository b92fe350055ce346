"""Running jobs against a caller, timing every request, and summarising rounds of samples."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

Caller = Callable[[str, str, Mapping[str, str] | None, bytes | None], tuple[int, bytes]]
"""``(method, path under the SCIM root, query, body) -> (status, body)``: one SCIM request."""


class BenchError(RuntimeError):
    """A server answered a benchmark request with a status the workload did not expect."""


def expect(status: int, body: bytes, *allowed: int, what: str = "") -> None:
    if status not in allowed:
        raise BenchError(f"{what or 'request'}: HTTP {status}, expected {allowed}: "
                         f"{body[:200]!r}")


class Timed:
    """A caller that records the wall time and this process's CPU time of each request
    (the CPU figure is only meaningful when one request runs at a time).

    ``raw`` sends a request without recording it (set-up steps inside a job).
    """

    def __init__(self, caller: Caller, *, storage_calls: Callable[[], int] | None = None
                 ) -> None:
        self.raw = caller
        self.latencies: list[int] = []
        self.cpu_ns = 0
        self._storage_calls = storage_calls
        self.storage_calls = 0

    def __call__(self, method: str, path: str, query: Mapping[str, str] | None = None,
                 body: bytes | None = None) -> tuple[int, bytes]:
        calls = self._storage_calls() if self._storage_calls else 0
        cpu = time.process_time_ns()
        start = time.perf_counter_ns()
        result = self.raw(method, path, query, body)
        self.latencies.append(time.perf_counter_ns() - start)
        self.cpu_ns += time.process_time_ns() - cpu
        if self._storage_calls:
            self.storage_calls += self._storage_calls() - calls
        return result


Job = Callable[[Timed], None]
"""A unit of work for one client: one or more requests sent in order."""


@dataclass
class Sample:
    """One round of one workload on one system."""

    latencies_ns: list[int] = field(default_factory=list)
    wall_ns: int = 0
    cpu_ns: int = 0
    errors: int = 0
    first_error: str | None = None
    storage_calls: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_ns)

    def merge(self, other: Sample) -> Sample:
        """Two phases run one after the other, as one sample."""
        return Sample(self.latencies_ns + other.latencies_ns, self.wall_ns + other.wall_ns,
                      self.cpu_ns + other.cpu_ns, self.errors + other.errors,
                      self.first_error or other.first_error,
                      self.storage_calls + other.storage_calls)


def run_serial(caller: Caller, jobs: Iterable[Job], *, budget_s: float | None = None,
               min_jobs: int = 5, storage_calls: Callable[[], int] | None = None) -> Sample:
    """Jobs one after another on one caller, stopping early once ``budget_s`` has passed
    (after at least ``min_jobs`` jobs). ``storage_calls`` (a counter) makes the sample
    count the storage requests made by the timed requests."""
    timed = Timed(caller, storage_calls=storage_calls)
    sample = Sample()
    deadline = None if budget_s is None else time.perf_counter_ns() + int(budget_s * 1e9)
    start = time.perf_counter_ns()
    for done, job in enumerate(jobs):
        if deadline is not None and done >= min_jobs and time.perf_counter_ns() > deadline:
            break
        try:
            job(timed)
        except Exception as exc:
            sample.errors += 1
            sample.first_error = sample.first_error or f"{type(exc).__name__}: {exc}"[:300]
    sample.wall_ns = time.perf_counter_ns() - start
    sample.latencies_ns = timed.latencies
    sample.cpu_ns = timed.cpu_ns
    sample.storage_calls = timed.storage_calls
    return sample


def percentile(sorted_values: Sequence[int], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True)
class Stat:
    """A workload on a system over several rounds.

    ``rps`` is the median over rounds: requests divided by their summed service time when
    measured in process (one request at a time), or by the round's wall time when several
    clients run at once. Latency percentiles pool every request of every round.
    """

    rounds: int
    requests: int
    rps: float
    best_rps: float
    cpu_rps: float
    """Requests per second of this process's CPU time (one request at a time only; else 0)."""
    p50_us: float
    p95_us: float
    p99_us: float
    wall_s: float
    errors: int = 0
    first_error: str | None = None
    storage_calls_per_request: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


def summarise(samples: Sequence[Sample], *, by_wall: bool, counted: bool = False) -> Stat:
    rates: list[float] = []
    cpu_rates: list[float] = []
    for s in samples:
        spent = s.wall_ns if by_wall else sum(s.latencies_ns)
        rates.append(s.requests * 1e9 / spent if spent else 0.0)
        cpu_rates.append(s.requests * 1e9 / s.cpu_ns if s.cpu_ns else 0.0)
    pooled = sorted(x for s in samples for x in s.latencies_ns)
    return Stat(
        rounds=len(samples),
        requests=len(pooled),
        rps=statistics.median(rates) if rates else 0.0,
        best_rps=max(rates, default=0.0),
        cpu_rps=statistics.median(cpu_rates) if cpu_rates and not by_wall else 0.0,
        p50_us=percentile(pooled, 0.50) / 1e3,
        p95_us=percentile(pooled, 0.95) / 1e3,
        p99_us=percentile(pooled, 0.99) / 1e3,
        wall_s=sum(s.wall_ns for s in samples) / 1e9,
        errors=sum(s.errors for s in samples),
        first_error=next((s.first_error for s in samples if s.first_error), None),
        storage_calls_per_request=(sum(s.storage_calls for s in samples) / len(pooled)
                                   if counted and pooled else None),
    )


def cycle_through(items: Sequence[str]) -> Iterator[str]:
    """The items over and over, for workloads that pick existing resources in turn."""
    while True:
        yield from items
