"""Retention of the activity log: entries older than ``SCIM_ACTIVITY_RETENTION_DAYS`` and
minute aggregates older than ``SCIM_ACTIVITY_MINUTES_RETENTION_DAYS`` go, whole UTC days
at a time, in bounded steps within a time budget, as events retention does."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scim_core.activity.rows import ActivityRows, ActivityStoreError

__all__ = ["ActivityTrim", "trim_activity"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivityTrim:
    """One run: rows removed per tenant, whether everything due went, failed tenants."""

    removed: dict[str, int]
    complete: bool
    failed: tuple[str, ...]


def _day(days: int, now: datetime | None) -> str:
    if days < 1:
        raise ValueError("the retention is at least 1 day")
    moment = (now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=days)
    return moment.strftime("%Y%m%d")


def trim_activity(rows: ActivityRows, tenants: Iterable[str], *, days: int,
                  minute_days: int, now: datetime | None = None, step: int = 1000,
                  budget_seconds: float = 60.0,
                  clock: Callable[[], float] = time.monotonic) -> ActivityTrim:
    """Delete each tenant's entry rows of days before ``days`` ago and minute rows of days
    before ``minute_days`` ago: at most ``step`` rows read per query, deleted 100 a batch;
    no step starts after ``budget_seconds``. A storage failure ends that tenant's run."""
    began = clock()
    removed: dict[str, int] = {}
    failed: list[str] = []
    complete = True
    entries_before, minutes_before = _day(days, now), _day(minute_days, now)
    for tenant in tenants:
        removed[tenant] = 0
        for kind, before in (("e", entries_before), ("m", minutes_before)):
            low, high = f"{tenant}|{kind}", f"{tenant}|{kind}{before}"
            try:
                while True:
                    if clock() - began >= budget_seconds:
                        complete = False
                        break
                    keys = rows.partitions(low, high, limit=step)
                    by_partition: dict[str, list[str]] = {}
                    for partition, row_key in keys:
                        by_partition.setdefault(partition, []).append(row_key)
                    for partition, row_keys in by_partition.items():
                        for i in range(0, len(row_keys), 100):
                            rows.delete(partition, row_keys[i:i + 100])
                    removed[tenant] += len(keys)
                    if len(keys) < step:
                        break
            except ActivityStoreError as exc:
                log.warning("Activity retention failed for tenant %s: %s", tenant, exc)
                failed.append(tenant)
                complete = False
                break
    return ActivityTrim(removed, complete, tuple(failed))
