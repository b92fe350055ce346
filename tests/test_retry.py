"""The one retry policy (scim_core/retry.py): its bounds in tries and in time, its jittered
back-off, the SDK's options taken from it, and a failed transaction raised as the store's own
exception instead of the SDK's rewritten in place."""

from __future__ import annotations

import pytest
from azure.data.tables import TableTransactionError

from scim_core import retry
from scim_core.retry import Retry
from scim_core.store.tables.batches import Step, row, submit
from scim_core.store.tables.client import PRODUCTION_CLIENT_OPTIONS
from scim_core.store.tables.errors import Failure, StepFailed, failure_of
from tests.azurite import TableHarness


class Clock:
    """A clock that moves only when told, and records the pauses asked of it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_tries_stop_at_the_attempts_bound() -> None:
    """A policy gives at most its number of tries, the first without a pause."""
    clock = Clock()
    tries = list(Retry(attempts=5, seconds=60.0).tries(clock=clock, sleep=clock.sleep))
    assert tries == [0, 1, 2, 3, 4] and clock.pauses == []


def test_tries_stop_at_the_time_bound() -> None:
    """No try starts once the policy's seconds have passed since the first."""
    clock = Clock()
    seen = []
    for attempt in Retry(attempts=100, seconds=1.0).tries(clock=clock, sleep=clock.sleep):
        seen.append(attempt)
        clock.now += 0.3
    assert seen == [0, 1, 2, 3]


def test_pauses_grow_with_full_jitter_up_to_the_cap() -> None:
    """After the immediate retries each pause is drawn from [0, base * 2**k], capped."""
    policy = Retry(attempts=8, seconds=60.0, base=0.01, cap=0.05, immediate=2)
    assert [policy.pause(n) for n in range(8)] == [0.0, 0.0, 0.0, 0.01, 0.02, 0.04, 0.05, 0.05]
    clock = Clock()
    drawn: list[tuple[float, float]] = []

    def highest(low: float, high: float) -> float:
        drawn.append((low, high))
        return high

    list(policy.tries(clock=clock, sleep=clock.sleep, jitter=highest))
    assert drawn == [(0.0, 0.01), (0.0, 0.02), (0.0, 0.04), (0.0, 0.05), (0.0, 0.05)]
    assert clock.pauses == [high for _, high in drawn]


def test_the_sdk_retries_transport_failures_as_the_policy_says() -> None:
    """The table client's retry options are the TRANSPORT policy's: its tries, back-off and
    bound in time."""
    assert PRODUCTION_CLIENT_OPTIONS["retry_total"] == retry.TRANSPORT.retries
    assert PRODUCTION_CLIENT_OPTIONS["retry_backoff_factor"] == retry.TRANSPORT.base
    assert PRODUCTION_CLIENT_OPTIONS["retry_backoff_max"] == retry.TRANSPORT.cap
    assert PRODUCTION_CLIENT_OPTIONS["timeout"] == retry.TRANSPORT.seconds


def test_a_failed_transaction_is_the_stores_exception_from_the_sdks(
        table_harness: TableHarness) -> None:
    """When submit drops an optional delete and the rest fails, it raises StepFailed naming
    the failed step among those it was given, chained from the SDK's error, whose own index
    (in the batch as sent) is left as the SDK set it."""
    table = table_harness.client
    table.create_table()
    table.create_entity(row("p", "taken"))
    steps = [Step("delete", row("p", "gone"), optional=True), Step("create", row("p", "taken"))]
    with pytest.raises(StepFailed) as raised:
        submit(table, steps)
    assert raised.value.index == 1 and failure_of(raised.value) is Failure.TAKEN
    cause = raised.value.__cause__
    assert isinstance(cause, TableTransactionError) and cause.index == 0
