"""Suite 7, the change feed, on Table Storage (Azurite): what the feed costs Entra's writes,
how fast a tenant's feed is read, and how soon a follower sees a write.

1. Entra's cycle mix over HTTP on ONE tenant (every write takes its positions from the same
   feed row) with each client count of ``feed_clients`` and each dev host worker count of
   ``feed_workers`` (every worker caches its own feed head). The dev host runs under
   ``bench/counted_host.py``: storage requests per SCIM request and per write, and the
   retry rate, transactions resubmitted because the feed row had moved, per write.
2. Read throughput: a feed of ``feed_events`` events read from the start in pages of
   ``feed_page`` with ``TableStore.tenant(t).events(after=, limit=)`` and, when it has
   one, ``scim_reader``'s ``TenantReader.events``.
3. Follow latency: from a write's HTTP response to a follower that polls every
   ``feed_poll_s`` (at once again after a full page) yielding its event.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import workloads
from bench.counted_host import FIELDS, read_counts
from bench.entra_cycle import CycleShape, tables_cycle
from bench.environment import Environment, log
from bench.http_load import run_concurrent
from bench.report import FeedCycle, FeedFollow, FeedRead, Results
from bench.runner import Job, Sample, percentile, summarise
from bench.systems import ROOT, CallCounter, Target, ours_http, process_cpu_s

FEED_TENANT = "bench-feed"
EVENT_TIME = "2026-12-01T00:00:00Z"


# -- 1. the Entra cycle, storage traffic counted -------------------------------------------------


@dataclass
class CountedCycle:
    """One Entra cycle on a dev host under ``counted_host``: the clients' sample, and what
    the dev host counted, in all and per phase."""

    sample: Sample
    counts: dict[str, int]
    phase_counts: dict[str, dict[str, int]]
    server_cpu_s: float | None
    azurite_cpu_s: float | None


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in FIELDS}


def _cpu(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def counted_cycle(target: Target, counters: Path, tag: str, shape: CycleShape, clients: int,
                  azurite_pid: int | None) -> CountedCycle:
    """Users (match, create), then groups (match, create), then member PATCHes, as
    ``entra_cycle.entra_cycle``, with the counters read between the phases."""
    user_ids: dict[int, str] = {}
    group_ids: dict[int, str] = {}
    plan = workloads.membership_plan(shape.users, shape.groups, shape.memberships)
    phases: dict[str, Callable[[], Iterator[Job]]] = {
        "users": lambda: workloads.cycle_user_jobs(tag, shape.users, user_ids),
        "groups": lambda: workloads.cycle_group_jobs(tag, shape.groups, group_ids),
        "members": lambda: workloads.cycle_member_jobs(group_ids, user_ids, plan,
                                                       shape.per_patch),
    }
    cpu = process_cpu_s(target.server_pid), process_cpu_s(azurite_pid)
    first = read_counts(counters)
    samples: list[Sample] = []
    phase_counts: dict[str, dict[str, int]] = {}
    for name, jobs in phases.items():
        before = read_counts(counters)
        samples.append(run_concurrent(target.make_caller, jobs(), clients=clients))
        phase_counts[name] = _delta(read_counts(counters), before)
    total = samples[0].merge(samples[1]).merge(samples[2])
    return CountedCycle(total, _delta(read_counts(counters), first), phase_counts,
                        _cpu(process_cpu_s(target.server_pid), cpu[0]),
                        _cpu(process_cpu_s(azurite_pid), cpu[1]))


def run_counted(connection: str, table: str, *, clients: int, workers: int, shape: CycleShape,
                tag: str, azurite_pid: int | None, root: Path = ROOT) -> CountedCycle:
    """One cycle on a fresh counted dev host of the tree at ``root``, on ``table``."""
    counters = Path(tempfile.mkdtemp(prefix="bench-counts-"))
    target = ours_http("tables", connection=connection, table=table, workers=workers,
                       root=root, counters=counters)
    try:
        return counted_cycle(target, counters, tag, shape, clients, azurite_pid)
    finally:
        target.close()
        shutil.rmtree(counters, ignore_errors=True)


def _summed(counts: Sequence[dict[str, int]]) -> dict[str, int]:
    return {name: sum(c[name] for c in counts) for name in FIELDS}


def feed_cycle(clients: int, workers: int, shape: CycleShape,
               cycles: Sequence[CountedCycle]) -> FeedCycle:
    """Rounds of one configuration: req/s the median of rounds, counts summed."""
    requests = sum(c.sample.requests for c in cycles)
    server = [c.server_cpu_s for c in cycles]
    azurite = [c.azurite_cpu_s for c in cycles]
    return FeedCycle(
        clients, workers, str(shape), summarise([c.sample for c in cycles], by_wall=True),
        _summed([c.counts for c in cycles]),
        {name: _summed([c.phase_counts[name] for c in cycles])
         for name in cycles[0].phase_counts},
        None if None in server else sum(x or 0.0 for x in server) * 1e3 / requests,
        None if None in azurite else sum(x or 0.0 for x in azurite) * 1e3 / requests)


def contention(env: Environment, results: Results) -> None:
    s = env.scale
    shape = tables_cycle(s)
    configs = [(c, w) for w in s.feed_workers for c in s.feed_clients]
    cycles: dict[tuple[int, int], list[CountedCycle]] = {}
    for r in range(s.feed_rounds):
        log(f"feed: Entra cycle on one tenant, round {r + 1}/{s.feed_rounds}")
        for k in range(len(configs)):  # each round starts at another configuration
            clients, workers = configs[(r + k) % len(configs)]
            purpose = f"feed{r}c{clients}w{workers}"
            try:
                cycles.setdefault((clients, workers), []).append(run_counted(
                    env.connection, env.table(purpose), clients=clients, workers=workers,
                    shape=shape, tag=f"feed{r}", azurite_pid=env.azurite_pid))
            finally:
                env.release(purpose)
    for clients, workers in configs:
        results.feed_cycles.append(feed_cycle(clients, workers, shape,
                                              cycles[(clients, workers)]))


# -- 2. read throughput --------------------------------------------------------------------------


def _counting_client(connection: str, table: str, counter: CallCounter) -> Any:
    """A TableClient on the product's transport that counts its requests."""
    from azure.data.tables import TableClient

    from scim_core.store.tables.client import BoundedWaitTransport

    class CountingTransport(BoundedWaitTransport):  # type: ignore[misc]
        def send(self, request: Any, **kwargs: Any) -> Any:
            counter.add()
            return super().send(request, **kwargs)

    return TableClient.from_connection_string(connection, table, transport=CountingTransport(
        connection_timeout=3, read_timeout=30, use_env_settings=False))


def seed_feed(view: Any, events: int) -> None:
    """``events`` user.created events, each with a user as the API renders one, appended
    in transactions of 99 (the feed row takes the 100th operation)."""
    from scim_core.events.model import EventDraft, EventType

    resource = json.loads(workloads.user_body("feed", 0))
    for start in range(0, events, 99):
        drafts = []
        for n in range(start, min(events, start + 99)):
            user_id = f"{n:08d}-feed-4b7e-9c1d-bench0000000"
            version = f'W/"{n:x}"'
            drafts.append(EventDraft(EventType.USER_CREATED, EVENT_TIME, "User", user_id,
                                     version, {**resource, "id": user_id, "meta": {
                                         "resourceType": "User", "created": EVENT_TIME,
                                         "lastModified": EVENT_TIME, "version": version}}))
        view.append(drafts)


@dataclass
class _Reads:
    walls: list[float] = field(default_factory=list)
    pages_ns: list[int] = field(default_factory=list)
    storage: int = 0
    cpu_s: float = 0.0
    azurite_s: float | None = 0.0


def _read_all(read: Callable[[int], Sequence[Any]], expected: int) -> tuple[float, list[int]]:
    cursor, got, pages = 0, 0, []
    start = time.perf_counter()
    while True:
        began = time.perf_counter_ns()
        page = read(cursor)
        pages.append(time.perf_counter_ns() - began)
        if not page:
            break
        if page[0].position != cursor + 1:
            raise RuntimeError(f"the feed skipped from {cursor} to {page[0].position}")
        cursor = page[-1].position
        got += len(page)
    if got != expected:
        raise RuntimeError(f"read {got} events, expected {expected}")
    return time.perf_counter() - start, pages


Read = Callable[[int], Sequence[Any]]


def _listed(page: Any) -> Sequence[Any]:
    """The events of a reader's page (an ``EventPage``, or a plain sequence)."""
    return tuple(getattr(page, "events", page))


def _readers(env: Environment, table: str, page: int, closers: list[Callable[[], None]]
             ) -> tuple[Any, list[tuple[str, Read, CallCounter]]]:
    """The tenant's view on ``TableStore`` (to seed with), and the readers to measure, each
    with a counter of its storage requests."""
    from scim_core.store.tables.store import TableStore

    counted = CallCounter()
    store = TableStore(_counting_client(env.connection, table, counted))
    closers.append(store.close)
    view = store.tenant(FEED_TENANT)
    found: list[tuple[str, Read, CallCounter]] = [
        ("TableStore", lambda after: view.events(after=after, limit=page), counted)]
    try:
        from scim_reader import DirectoryReader
    except ImportError:
        return view, found
    counter = CallCounter()
    client = _counting_client(env.connection, table, counter)
    closers.append(client.close)
    events = getattr(DirectoryReader.from_table_client(client).tenant(FEED_TENANT), "events",
                     None)
    if events is None:
        log("feed: scim_reader has no TenantReader.events yet; reading with TableStore only")
    else:
        found.append(("scim_reader", lambda after: _listed(events(after=after, limit=page)),
                      counter))
    return view, found


def read_throughput(env: Environment, results: Results) -> None:
    s = env.scale
    closers: list[Callable[[], None]] = []
    try:
        view, readers = _readers(env, env.table("feedread"), s.feed_page, closers)
        started = time.monotonic()
        seed_feed(view, s.feed_events)
        log(f"feed: {s.feed_events:,} events appended in {time.monotonic() - started:.1f} s")
        measured = {name: _Reads() for name, *_ in readers}
        for r in range(-1, s.feed_read_rounds):  # round -1 warms up and is dropped
            for k in range(len(readers)):
                name, read, counter = readers[(r + k) % len(readers)]
                calls, cpu = counter.value, time.process_time()
                azurite = process_cpu_s(env.azurite_pid)
                wall, pages = _read_all(read, s.feed_events)
                if r < 0:
                    continue
                m = measured[name]
                m.walls.append(wall)
                m.pages_ns += pages
                m.storage += counter.value - calls
                m.cpu_s += time.process_time() - cpu
                m.azurite_s = _added(m.azurite_s, _cpu(process_cpu_s(env.azurite_pid), azurite))
    finally:
        for close in closers:
            close()
        env.release("feedread")
    for name, *_ in readers:
        m = measured[name]
        rates = [s.feed_events / w for w in m.walls]
        pages = sorted(m.pages_ns)
        thousands = s.feed_events * len(m.walls) / 1000
        results.feed_reads.append(FeedRead(
            name, s.feed_events, s.feed_page, len(m.walls), statistics.median(rates),
            max(rates), percentile(pages, 0.5) / 1e6, percentile(pages, 0.95) / 1e6,
            m.storage / len(pages), m.cpu_s * 1e3 / thousands,
            None if m.azurite_s is None else m.azurite_s * 1e3 / thousands))


def _added(total: float | None, spent: float | None) -> float | None:
    return None if total is None or spent is None else total + spent


# -- 3. follow latency ---------------------------------------------------------------------------


def poll(view: Any, after: int, *, page: int, interval: float, stop: threading.Event,
         polls: list[int]) -> Iterator[Any]:
    """``view``'s events after ``after``: a read every ``interval`` seconds, and at once
    again when a page came back full, until ``stop``; ``polls[0]`` counts the reads."""
    cursor = after
    while not stop.is_set():
        found = view.events(after=cursor, limit=page)
        polls[0] += 1
        yield from found
        if found:
            cursor = found[-1].position
        if len(found) < page:
            stop.wait(interval)


class Follower(threading.Thread):
    """Notes when each user.created event of ``events`` (a follow that ends once ``stop``
    is set) is yielded."""

    def __init__(self, name: str, events: Callable[[threading.Event], Iterator[Any]]) -> None:
        super().__init__(daemon=True)
        self.reader = name
        self._events = events
        self.stop = threading.Event()
        self.seen: dict[str, float] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for event in self._events(self.stop):
                if event.type == "user.created":
                    self.seen.setdefault(event.resource_id, time.perf_counter())
        except BaseException as error:
            self.error = error


def _followers(env: Environment, table: str, after: int, closers: list[Callable[[], None]]
               ) -> tuple[list[Follower], list[int]]:
    """A follower polling ``TableStore.events`` and, when scim_reader has one, one on
    ``TenantReader.follow``; and the first one's count of polls."""
    from scim_core.store.tables.store import TableStore

    s = env.scale
    store = TableStore(_counting_client(env.connection, table, CallCounter()))
    closers.append(store.close)
    view = store.tenant("default")
    polls = [0]
    followers = [Follower("TableStore", lambda stop: poll(
        view, after, page=s.feed_page, interval=s.feed_poll_s, stop=stop, polls=polls))]
    try:
        from scim_reader import DirectoryReader
    except ImportError:
        return followers, polls
    reader = DirectoryReader.from_connection_string(env.connection, table=table)
    closers.append(reader.close)
    follow = getattr(reader.tenant("default"), "follow", None)
    if follow is not None:
        followers.append(Follower("scim_reader", lambda stop: follow(
            after, poll_seconds=s.feed_poll_s, stop=stop, limit=s.feed_page)))
    return followers, polls


def _position(env: Environment, table: str) -> int:
    from scim_core.store.tables.store import TableStore

    store = TableStore(_counting_client(env.connection, table, CallCounter()))
    try:
        return store.tenant("default").position()
    finally:
        store.close()


def follow_latency(env: Environment, results: Results) -> None:
    s = env.scale
    table = env.table("feedfollow")
    target = ours_http("tables", connection=env.connection, table=table)
    call = target.make_caller()
    pause = random.Random(16)
    answered: dict[str, float] = {}
    closers: list[Callable[[], None]] = []
    try:
        workloads.created_id(*call("POST", "/Users", None, workloads.user_body("warm", 0)),
                             what="warm-up user")
        followers, polls = _followers(env, table, _position(env, table), closers)
        for follower in followers:
            follower.start()
        for n in range(s.feed_follow_writes):
            created = workloads.created_id(
                *call("POST", "/Users", None, workloads.user_body("follow", n)), what="write")
            answered[created] = time.perf_counter()
            time.sleep(pause.uniform(0, s.feed_write_gap_s))
        deadline = time.monotonic() + 10 + 5 * s.feed_poll_s
        while time.monotonic() < deadline and any(
                f.is_alive() and not set(answered) <= set(f.seen) for f in followers):
            time.sleep(0.01)
        for follower in followers:
            follower.stop.set()
            follower.join(timeout=30)
            if follower.error is not None:
                raise follower.error
    finally:
        getattr(call, "close", lambda: None)()
        target.close()
        for close in closers:
            close()
        env.release("feedfollow")
    for follower in followers:
        waits = sorted(int((follower.seen[i] - t) * 1e9) for i, t in answered.items()
                       if i in follower.seen)
        results.feed_follow.append(FeedFollow(
            follower.reader, len(answered), len(waits), s.feed_poll_s,
            percentile(waits, 0.5) / 1e6, percentile(waits, 0.95) / 1e6,
            waits[0] / 1e6 if waits else 0.0, waits[-1] / 1e6 if waits else 0.0,
            polls[0] if follower is followers[0] else None))


def run(env: Environment, results: Results) -> None:
    """The change feed suite (Table Storage only)."""
    if not env.with_tables:
        log("feed: needs Table Storage (Azurite); skipped")
        return
    contention(env, results)
    log("feed: read throughput")
    read_throughput(env, results)
    log("feed: follow latency")
    follow_latency(env, results)
