"""Retention of the change feed: events older than ``SCIM_EVENTS_RETENTION_DAYS`` are
removed from every tenant's feed in bounded steps, within a time budget; what a run leaves
is finished by the next (docs/host-app.md, "Retention and resynchronising")."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scim_core.store.base import Store
from scim_core.store.errors import StoreError
from scim_core.tenants.model import DEFAULT_TENANT, DELETING

__all__ = [
    "DEFAULT_BUDGET_SECONDS",
    "DEFAULT_STEP",
    "RetentionReport",
    "TenantTrim",
    "cutoff",
    "retained_tenants",
    "trim_feeds",
]

log = logging.getLogger(__name__)

DEFAULT_STEP = 1000
DEFAULT_BUDGET_SECONDS = 240.0
"""Well inside the 5 minutes a Consumption timer run gets by default (10 at most)."""


@dataclass(frozen=True)
class TenantTrim:
    """What a run did to one tenant's feed: ``removed`` events in ``steps`` calls of
    ``TenantStore.trim``. ``done``: nothing older than the cutoff is left; otherwise the
    budget ran out or storage failed (``error``, one line without secrets)."""

    tenant: str
    removed: int = 0
    steps: int = 0
    done: bool = False
    error: str | None = None


@dataclass(frozen=True)
class RetentionReport:
    """One retention run: the cutoff (events before it go) and each tenant's outcome, the
    default tenant first."""

    before: str
    tenants: tuple[TenantTrim, ...]

    @property
    def removed(self) -> int:
        """Events removed from all tenants."""
        return sum(t.removed for t in self.tenants)

    @property
    def counts(self) -> dict[str, int]:
        """Events removed, per tenant."""
        return {t.tenant: t.removed for t in self.tenants}

    @property
    def failed(self) -> tuple[str, ...]:
        """The tenants whose storage failed."""
        return tuple(t.tenant for t in self.tenants if t.error is not None)

    @property
    def complete(self) -> bool:
        """Whether every tenant's feed holds nothing older than the cutoff any more."""
        return all(t.done for t in self.tenants)


def cutoff(days: int, now: datetime | None = None) -> str:
    """The instant ``days`` before ``now`` (default: the current time), written as event
    times are (ISO 8601 UTC with milliseconds and ``Z``), so the two compare as text."""
    if days < 1:
        raise ValueError("the retention is at least 1 day")
    moment = (now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=days)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def retained_tenants(store: Store) -> list[str]:
    """The tenants whose feeds retention trims: the default one, then every registered
    tenant by id except those being deleted (their rows are going anyway)."""
    found = list(store.tenant_registry().list())
    deleting = {t.id for t in found if t.state == DELETING}
    ids = sorted({t.id for t in found} - deleting - {DEFAULT_TENANT})
    return ([] if DEFAULT_TENANT in deleting else [DEFAULT_TENANT]) + ids


def trim_feeds(store: Store, *, days: int, now: datetime | None = None,
               step: int = DEFAULT_STEP, budget_seconds: float | None = None,
               tenants: Iterable[str] | None = None, start: int | None = None,
               clock: Callable[[], float] = time.monotonic) -> RetentionReport:
    """Remove every event older than ``days`` before ``now`` from the feeds of ``tenants``
    (default: ``retained_tenants(store)``), ``step`` events per ``TenantStore.trim`` call.

    Tenants take turns, one step each per round, so a large backlog in one does not starve
    the others; the first round starts at the ``start``-th tenant (default: a random one),
    so when the budget cannot visit them all, each run reaches others. A tenant is done
    when a step removes fewer than ``step``. No step starts once
    ``budget_seconds`` (default ``DEFAULT_BUDGET_SECONDS``; ``math.inf`` for none) have
    passed on ``clock``. A storage failure is logged and ends that tenant's turns only.
    Raises ``StoreError`` only when the tenant registry cannot be listed."""
    if step < 1:
        raise ValueError("step is at least 1")
    before = cutoff(days, now)
    budget = DEFAULT_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    began = clock()
    names = retained_tenants(store) if tenants is None else list(dict.fromkeys(tenants))
    outcome = {name: TenantTrim(name) for name in names}
    first = (random.randrange(len(names)) if start is None else start % len(names)) if names else 0
    pending = names[first:] + names[:first]
    while pending and clock() - began < budget:
        still = []
        for name in pending:
            if clock() - began >= budget:
                still.append(name)
                continue
            trimmed = outcome[name]
            try:
                gone = store.tenant(name).trim(before=before, limit=step)
            except StoreError as exc:
                log.warning("Events retention failed for tenant %s: %s (%s)", name,
                            type(exc).__name__, exc)
                outcome[name] = TenantTrim(name, trimmed.removed, trimmed.steps + 1,
                                           error=f"{type(exc).__name__}: {exc}")
                continue
            done = gone < step
            outcome[name] = TenantTrim(name, trimmed.removed + gone, trimmed.steps + 1, done)
            if not done:
                still.append(name)
        pending = still
    report = RetentionReport(before, tuple(outcome[name] for name in names))
    left = [t.tenant for t in report.tenants if not t.done and t.error is None]
    if left:
        log.info("Events retention stopped after %.0f s with %d tenant(s) not finished; the "
                 "next run continues", budget, len(left))
    return report
