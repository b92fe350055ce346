"""Expired Idempotency-Key answers are deleted by the retention timer's run, in bounded
steps within a time budget, on both stores; answers still within 24 hours stay and
replay."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from azure.functions.timer import TimerRequest

from scim_core import Request, Settings, build_api
from scim_core.http import Response
from scim_core.manage.idempotency import KEEP_SECONDS, PARTITION, Idempotency
from scim_core.manage.rows import side_rows
from scim_core.store import MemoryStore
from tests.kvfake import FakeClock
from tests.support import TOKEN

BASE = "https://vendor.example/manage/v1"


@pytest.fixture(params=["memory", "tables"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield MemoryStore() if request.param == "memory" else request.getfixturevalue(
        "table_store")


def answer(n: int) -> Response:
    return Response.json(201, {"n": n})


def post(kept: Idempotency, key: str, n: int) -> Response:
    request = Request("POST", "/tenants", BASE, {}, {}, f'{{"n":{n}}}'.encode())
    return kept.run("key-1", key, request, lambda: answer(n))


def keys(store: Any) -> list[str]:
    return [key for key, _ in side_rows(store).scan(PARTITION)]


def test_expired_answers_go_and_current_ones_stay(store: Any, clock: FakeClock) -> None:
    """Answers older than 24 hours are deleted; a newer one stays and still replays."""
    kept = Idempotency(side_rows(store), clock=clock)
    for n in range(5):
        post(kept, f"old-{n}", n)
    clock.advance(KEEP_SECONDS - 3600)
    post(kept, "fresh", 9)
    clock.advance(3601)
    assert len(keys(store)) == 6
    trimmed = kept.trim(budget_seconds=60)
    assert (trimmed.removed, trimmed.complete) == (5, True)
    assert len(keys(store)) == 1
    replay = post(kept, "fresh", 9)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert kept.trim(budget_seconds=60).removed == 0


def test_trimming_goes_in_bounded_steps_within_its_budget(store: Any,
                                                          clock: FakeClock) -> None:
    """With steps of 2 rows, a budget spent after the first step leaves the rest for the
    next run (complete: False), which finishes them."""
    kept = Idempotency(side_rows(store), clock=clock)
    for n in range(5):
        post(kept, f"old-{n}", n)
    clock.advance(KEEP_SECONDS + 1)
    ticks = iter(range(100))
    first = kept.trim(budget_seconds=1.5, step=2, clock=lambda: float(next(ticks)))
    assert (first.removed, first.complete) == (2, False)
    assert len(keys(store)) == 3
    rest = kept.trim(budget_seconds=60, step=2)
    assert (rest.removed, rest.complete) == (3, True)
    assert keys(store) == []


def test_the_retention_timer_trims_them(caplog: pytest.LogCaptureFixture) -> None:
    """The events retention timer function, invoked with a real TimerRequest, deletes the
    expired answers of the app's store and logs how many."""
    import function_app

    store = MemoryStore()
    api = build_api(Settings(store="memory", bearer_token=TOKEN), store=store)
    past = Idempotency(side_rows(store), clock=lambda: 0.0)
    post(past, "ancient", 1)
    assert keys(store)
    app = function_app.app
    app.functions_bindings = None
    try:
        timer = next(f for f in app.get_functions()
                     if f.get_function_name() == "events_retention")
    finally:
        app.functions_bindings = None
    function_app.reset_api(api)
    try:
        with caplog.at_level(logging.INFO, logger="scim_core"):
            timer.get_user_function()(TimerRequest())
    finally:
        function_app.reset_api(None)
    assert keys(store) == []
    assert "Idempotency retention removed 1 expired answer(s)" in caplog.text
