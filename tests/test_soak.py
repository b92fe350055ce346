"""A bounded soak: the Entra-like request mix over HTTP through the dev host, with the
process's memory sampled, shows no growth beyond a documented bound once warmed up.

``SCIM_SOAK_SECONDS`` sets the length (default 20 s in ``make test``; the figures in
docs/reliability.md come from a 60 s run). The population is bounded (users are deleted and
re-created, members added and removed), so the data held by the in-memory store stays the
same size and any lasting growth would be a leak in the request path.
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scim_core.activity import memory_rows
from scim_core.store import MemoryStore
from tests.conftest import make_api
from tests.reliability import check_store_invariants, count, write_figures
from tests.support import ENTERPRISE, GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, HttpClient, use_api

SUITE = "soak"
SECONDS = float(os.environ.get("SCIM_SOAK_SECONDS", "20"))
WORKERS = 4
USERS_PER_WORKER = 40
GROUPS_PER_WORKER = 4
# Bounds, measured from the end of the warm-up (a quarter of the run, at least 4 s):
RSS_GROWTH_LIMIT_MB = 50.0   # resident set size, whole process
TREND_LIMIT_MB = 10.0        # median of the last third of samples over the first third
TRACED_GROWTH_LIMIT_MB = 8.0  # Python heap still allocated, traced by tracemalloc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(int(SECONDS) + 120)]


def rss_mb() -> float:
    """This process's resident set size (VmRSS) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Worker:
    """One Entra-like provisioning job over its own keep-alive connection and its own slice
    of users and groups: match, create, update, disable, re-enable, delete, group sync."""

    index: int
    client: HttpClient
    rng: random.Random
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    users: dict[str, str | None] = field(default_factory=dict)  # userName -> id
    groups: dict[str, str] = field(default_factory=dict)  # displayName -> id

    def call(self, method: str, path: str, body: Any = None, *, expect: tuple[int, ...],
             **kw: Any) -> Any:
        result = self.client.request(method, path, body, **kw)
        self.statuses[str(result.status)] += 1
        if result.status not in expect or result.status >= 500:
            self.errors.append(f"{method} {path} -> {result.status} {result.body[:200]!r}")
        return result

    def setup(self) -> None:
        for i in range(USERS_PER_WORKER):
            self.users[f"w{self.index}-u{i}@contoso.example"] = None
        for i in range(GROUPS_PER_WORKER):
            name = f"w{self.index} group {i}"
            found = self.call("GET", "/Groups", expect=(200,), params={
                "filter": f'displayName eq "{name}"', "excludedAttributes": "members"})
            if found.json["totalResults"]:
                self.groups[name] = found.json["Resources"][0]["id"]
                continue
            created = self.call("POST", "/Groups", {"schemas": [GROUP_SCHEMA],
                                                    "displayName": name}, expect=(201,))
            self.groups[name] = created.json["id"]

    def step(self) -> None:
        user_name = self.rng.choice(list(self.users))
        user_id = self.match(user_name)
        roll = self.rng.random()
        if user_id is None:
            self.create(user_name)
        elif roll < 0.35:
            self.update(user_id)
        elif roll < 0.55:
            self.group_sync(user_id)
        elif roll < 0.65:
            self.call("GET", f"/Users/{user_id}", expect=(200,))
        elif roll < 0.72:
            self.call("DELETE", f"/Users/{user_id}", expect=(204,))
            self.users[user_name] = None
        elif roll < 0.80:
            self.call("GET", "/Users", expect=(200,), params={
                "filter": f'externalId eq "{user_name.split("@")[0]}"'})
        elif roll < 0.86:
            self.call("GET", "/Users", expect=(200,), params={
                "filter": f'emails[type eq "work"].value eq "{user_name}"'})
        elif roll < 0.90:
            self.call("GET", "/Users", expect=(200,), params={"filter": (
                f'userName eq "{uuid.uuid4()}"')})  # Test Connection
        elif roll < 0.93:
            self.call("GET", "/Users", expect=(401,), token="not-the-token")
        elif roll < 0.96:
            self.call("GET", "/Users", expect=(400,), params={"filter": "userName eq"})
        else:
            self.call("GET", "/ServiceProviderConfig", expect=(200,))

    def match(self, user_name: str) -> str | None:
        found = self.call("GET", "/Users", expect=(200,),
                          params={"filter": f'userName eq "{user_name}"'})
        resources = found.json["Resources"] if found.status == 200 else []
        user_id = resources[0]["id"] if resources else None
        self.users[user_name] = user_id
        return user_id

    def create(self, user_name: str) -> None:
        local = user_name.split("@")[0]
        body = {
            "schemas": [USER_SCHEMA, ENTERPRISE], "externalId": local, "userName": user_name,
            "active": True, "displayName": local.title(),
            "emails": [{"primary": True, "type": "work", "value": user_name}],
            "name": {"formatted": local, "givenName": local, "familyName": "Soak"},
            ENTERPRISE: {"employeeNumber": str(self.rng.randrange(10**6)),
                         "department": "Soak"},
            "meta": {"resourceType": "User"}, "roles": [],
        }
        created = self.call("POST", "/Users", body, expect=(201,))
        if created.status == 201:
            self.users[user_name] = created.json["id"]

    def update(self, user_id: str) -> None:
        operations = self.rng.choice([
            [{"op": "Replace", "path": "active", "value": "False"}],
            [{"op": "Replace", "path": "active", "value": "True"}],
            [{"op": "Replace", "path": "displayName", "value": f"Name {self.rng.random()}"},
             {"op": "Replace", "path": 'emails[type eq "work"].value',
              "value": f"alt{self.rng.randrange(99)}@contoso.example"}],
            [{"op": "Add", "path": f"{ENTERPRISE}:manager",
              "value": self.rng.choice([u for u in self.users.values() if u] or [user_id])}],
            [{"op": "replace", "value": {"title": "Engineer", "name.givenName": "G"}}],
        ])
        self.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH_OP],
                                                 "Operations": operations}, expect=(200,))

    def group_sync(self, user_id: str) -> None:
        group_id = self.rng.choice(list(self.groups.values()))
        check = self.call("GET", "/Groups", expect=(200,), params={
            "filter": f'id eq "{group_id}" and members[value eq "{user_id}"]',
            "excludedAttributes": "members"})
        is_member = check.status == 200 and check.json["totalResults"] == 1
        if is_member and self.rng.random() < 0.5:
            operation = self.rng.choice([
                {"op": "Remove", "path": f'members[value eq "{user_id}"]'},
                {"op": "Remove", "path": "members", "value": [{"value": user_id}]},
            ])
        else:
            operation = {"op": "Add", "path": "members", "value": [{"value": user_id}]}
        self.call("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH_OP],
                                                   "Operations": [operation]},
                  expect=(204,))
        if self.rng.random() < 0.1:
            self.call("GET", f"/Groups/{group_id}", expect=(200,),
                      params={"excludedAttributes": "members"})


@pytest.fixture
def soak_store(devhost_port: int) -> Iterator[MemoryStore]:
    store = MemoryStore()
    # The activity log is on; its memory rows are capped well below what the warm-up
    # writes, so past the warm-up they hold steady and any growth is a leak.
    memory_rows(store).entry_rows = 2_000
    use_api(make_api(store, activity=True))
    yield store


def _run(workers: list[Worker], stop: threading.Event) -> list[threading.Thread]:
    def loop(worker: Worker) -> None:
        while not stop.is_set() and len(worker.errors) < 20:
            worker.step()

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    return threads


def test_soak_memory_stays_bounded(devhost_port: int, soak_store: MemoryStore) -> None:
    """Under SCIM_SOAK_SECONDS of the Entra-like mix (4 connections, bounded population)
    every answer is the expected one, the store's invariants hold, and after warm-up the
    process grows by less than 50 MB RSS, its RSS trend is flat (< 10 MB from the first to
    the last third of the samples) and the traced Python heap by less than 8 MB, with the
    activity log on (its memory rows at their cap)."""
    workers = [Worker(i, HttpClient(devhost_port), random.Random(i)) for i in range(WORKERS)]
    for worker in workers:
        worker.setup()
    warm_up = max(4.0, SECONDS / 4)
    stop = threading.Event()
    started = time.monotonic()
    threads = _run(workers, stop)
    time.sleep(warm_up)
    gc.collect()
    tracemalloc.start()
    traced_start = tracemalloc.get_traced_memory()[0]
    samples = [rss_mb()]
    while time.monotonic() - started < SECONDS:
        time.sleep(0.5)
        samples.append(rss_mb())
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    gc.collect()
    traced_growth = (tracemalloc.get_traced_memory()[0] - traced_start) / 2**20
    tracemalloc.stop()
    for worker in workers:
        worker.client.close()

    statuses: Counter[str] = sum((w.statuses for w in workers), Counter())
    errors = [e for w in workers for e in w.errors]
    requests = sum(statuses.values())
    third = max(1, len(samples) // 3)
    trend = statistics.median(samples[-third:]) - statistics.median(samples[:third])
    growth = max(samples) - samples[0]
    invariants = check_store_invariants(soak_store)
    count(f"{SUITE}.requests", requests)
    count(f"{SUITE}.invariant_checks", invariants)
    write_figures(SUITE, {
        f"{SUITE}.seconds": SECONDS, f"{SUITE}.warm_up_seconds": warm_up,
        f"{SUITE}.requests_per_second": round(requests / SECONDS),
        f"{SUITE}.statuses": dict(sorted(statuses.items())),
        f"{SUITE}.rss_mb_first": round(samples[0], 1),
        f"{SUITE}.rss_mb_last": round(samples[-1], 1),
        f"{SUITE}.rss_mb_max_growth": round(growth, 2),
        f"{SUITE}.rss_mb_trend": round(trend, 2),
        f"{SUITE}.traced_mb_growth": round(traced_growth, 2),
        f"{SUITE}.rss_samples": len(samples),
    })
    assert not errors, errors[:10]
    assert statuses["500"] == 0 and statuses["503"] == 0
    assert requests > 50 * SECONDS, requests  # the soak really ran
    assert growth < RSS_GROWTH_LIMIT_MB, (growth, samples)
    assert trend < TREND_LIMIT_MB, (trend, samples)
    assert traced_growth < TRACED_GROWTH_LIMIT_MB, traced_growth
    held = Counter(r["PartitionKey"] for r in memory_rows(soak_store).all_rows()
                   if "|e" in r["PartitionKey"])
    assert held and max(held.values()) <= 2_200, held  # the log was on, and at its cap
