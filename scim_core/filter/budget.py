"""The work one request may spend evaluating filters and walking multi-valued attributes
(docs/architecture.md, "Validation, filters and PATCH")."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from scim_core.errors import TooMany
from scim_core.filter.ast import And, Expr, Not, Or, ValuePath

MAX_WORK = 100_000
"""Units per request: one filter term tested against one resource or element, or one
element a PATCH operation walks. Entra's requests spend a few units each; this many take
about 0.3 s of CPU at most."""

P = ParamSpec("P")
R = TypeVar("R")


class WorkBudget:
    """Units left for one request; ``spend`` refuses (400 ``tooMany``) past the limit,
    before the work is done. It also remembers, for the request, which filters were
    checked and how their paths resolved, so a scan checks and resolves them once."""

    __slots__ = ("checked", "limit", "resolved", "used")

    def __init__(self, limit: int = MAX_WORK) -> None:
        self.limit = limit
        self.used = 0
        self.checked: set[tuple[int, str]] = set()
        self.resolved: dict[tuple[str, str], Any] = {}

    def spend(self, units: int) -> None:
        """Charge ``units``; raises ``TooMany`` naming the limit when they do not fit."""
        self.used += units
        if self.used > self.limit:
            raise TooMany(
                f"The request needs more than {self.limit} units of filter and PATCH work "
                "(filter terms times resources or values tested, plus values of "
                "multi-valued attributes that PATCH operations walk); the limit (max work "
                f"per request) is {self.limit}. Use fewer filter terms or operations, or an "
                "indexed filter (eq on userName, externalId, emails, displayName or id).")


_current: ContextVar[WorkBudget | None] = ContextVar("scim_work_budget", default=None)


def current_budget() -> WorkBudget | None:
    """The budget of the request being served, or None outside ``metered`` calls."""
    return _current.get()


@contextlib.contextmanager
def metering(limit: int = MAX_WORK) -> Iterator[WorkBudget]:
    """A fresh budget for the evaluations in this block (one request's search)."""
    budget = WorkBudget(limit)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def metered(operation: Callable[P, R]) -> Callable[P, R]:
    """``operation`` run with a fresh budget of ``MAX_WORK`` for its evaluations."""
    @functools.wraps(operation)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with metering():
            return operation(*args, **kwargs)
    return run


def term_count(expr: Expr) -> int:
    """How many comparisons a filter holds (``and``/``or``/``not`` are free)."""
    count = 0
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, And | Or):
            stack.extend((node.left, node.right))
        elif isinstance(node, Not):
            stack.append(node.expr)
        elif isinstance(node, ValuePath):
            stack.append(node.filter)
        else:
            count += 1
    return count
