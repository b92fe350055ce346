"""Entra's initial cycle: its shape (users, groups, memberships) and one run of it against a
target (suite 4 in bench/suites.py; the change feed suite in bench/feed.py runs it too)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bench import workloads
from bench.environment import Scale
from bench.http_load import run_concurrent
from bench.runner import Job, Sample, run_serial
from bench.systems import Target


def _run(target: Target, jobs: Iterator[Job], clients: int) -> Sample:
    if clients > 1:
        return run_concurrent(target.make_caller, jobs, clients=clients)
    return run_serial(target.make_caller(), jobs)


@dataclass(frozen=True)
class CycleShape:
    users: int
    groups: int
    memberships: int
    per_patch: int

    @property
    def requests(self) -> int:
        plan = workloads.membership_plan(self.users, self.groups, self.memberships)
        patches = sum(-(-len(m) // self.per_patch) for m in plan)
        return 2 * (self.users + self.groups) + patches

    def __str__(self) -> str:
        return (f"{self.users:,} users, {self.groups} groups, {self.memberships:,} memberships "
                f"({self.per_patch} per PATCH) = {self.requests:,} requests")


def tables_cycle(s: Scale) -> CycleShape:
    """The cycle on Table Storage: Azurite on two shared cores manages tens of SCIM requests
    a second, so Table Storage gets a cycle of a tenth of the size (the rate is compared)."""
    return CycleShape(max(1, s.cycle_users // s.tables_cycle_divisor),
                      max(1, s.cycle_groups // s.tables_cycle_divisor),
                      max(1, s.cycle_memberships // s.tables_cycle_divisor),
                      s.members_per_patch)


def entra_cycle(target: Target, tag: str, shape: CycleShape, clients: int
                ) -> tuple[Sample, dict[str, Sample]]:
    """Users (match, create), then groups (match, create), then member PATCHes."""
    user_ids: dict[int, str] = {}
    group_ids: dict[int, str] = {}
    plan = workloads.membership_plan(shape.users, shape.groups, shape.memberships)
    phases = {
        "users": _run(target, workloads.cycle_user_jobs(tag, shape.users, user_ids), clients),
        "groups": _run(target, workloads.cycle_group_jobs(tag, shape.groups, group_ids),
                       clients),
    }
    phases["members"] = _run(target, workloads.cycle_member_jobs(
        group_ids, user_ids, plan, shape.per_patch), clients)
    return phases["users"].merge(phases["groups"]).merge(phases["members"]), phases
