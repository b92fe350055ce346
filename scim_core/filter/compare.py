"""Comparing one filter literal with one attribute value, by the attribute's schema type."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scim_core.filter.ast import Value
from scim_core.schema import Attribute
from scim_core.schema.model import BINARY, BOOLEAN, COMPLEX, DATETIME, DECIMAL, INTEGER
from scim_core.validation import parse_datetime

_ORDERING = frozenset({"gt", "ge", "lt", "le"})
_SUBSTRING = frozenset({"co", "sw", "ew"})
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
    "co": lambda left, right: right in left, "sw": str.startswith, "ew": str.endswith,
}


def sort_key(value: Any) -> tuple[Any, ...]:
    """An ordering key that never raises: absent values last, then Booleans, numbers,
    instants and case-insensitive strings, each group in natural order."""
    if value is None:
        return (1,)
    if isinstance(value, bool):
        return (0, 0, value)
    if isinstance(value, int | float):
        return (0, 1, value)
    if isinstance(value, datetime):
        return (0, 2, instant(value))
    if isinstance(value, str):
        return (0, 3, value.casefold(), value)
    return (0, 4, repr(value))


def type_problem(op: str, literal: Value, kind: str | None) -> str | None:
    """Why ``op literal`` cannot apply to an attribute of schema type ``kind``, or None."""
    equality = op in ("eq", "ne")
    if op == "pr" or (literal is None and equality):
        return None
    if literal is None or (isinstance(literal, bool) and not equality):
        return "null, true and false can only be used with eq or ne"
    if kind == BOOLEAN:
        if not equality:
            return "a Boolean attribute allows only eq, ne or pr"
        return None if as_bool(literal) is not None else "compare a Boolean with true or false"
    if kind in (INTEGER, DECIMAL, DATETIME) and op in _SUBSTRING:
        return "co, sw and ew apply to strings only"
    if kind in (INTEGER, DECIMAL) and not is_number(literal):
        return "compare a number with a number"
    if kind == DATETIME and instant(literal) is None:
        return 'compare a dateTime with a dateTime such as "2026-01-31T12:00:00Z"'
    if kind == BINARY and op in _ORDERING:
        return "a binary attribute cannot be ordered"
    if kind == COMPLEX:
        return "compare one of the complex attribute's sub-attributes"
    return None


def compare(op: str, literal: Value, actual: Any, definition: Attribute | None) -> bool:
    """Whether ``actual op literal`` holds by the attribute's type; False if incomparable."""
    if op == "eq":
        return equal(literal, actual, definition)
    pair = comparable(literal, actual, definition)
    if pair is None:
        return False
    left, right = pair
    if op in _SUBSTRING:
        return isinstance(left, str) and isinstance(right, str) and _OPERATORS[op](left, right)
    if isinstance(left, bool) or isinstance(right, bool):
        return False
    try:
        return bool(_OPERATORS[op](left, right))
    except TypeError:
        return False


def equal(literal: Value, actual: Any, definition: Attribute | None) -> bool:
    """Whether ``actual`` equals ``literal`` as the attribute compares (type and case)."""
    pair = comparable(literal, actual, definition)
    return pair is not None and pair[0] == pair[1]


def comparable(literal: Value, actual: Any,
                definition: Attribute | None) -> tuple[Any, Any] | None:
    """``(actual, literal)`` converted to one comparable type, or None when they cannot be.

    The schema type decides when known; otherwise the literal's and the value's JSON types.
    """
    kind = definition.type if definition is not None else None
    if kind == BOOLEAN or (kind is None and isinstance(literal, bool)):
        left_bool, right_bool = as_bool(actual), as_bool(literal)
        return None if left_bool is None or right_bool is None else (left_bool, right_bool)
    if kind in (INTEGER, DECIMAL) or (kind is None and is_number(literal) and is_number(actual)):
        return (actual, literal) if is_number(actual) and is_number(literal) else None
    if kind == DATETIME:
        left_time, right_time = instant(actual), instant(literal)
        return None if left_time is None or right_time is None else (left_time, right_time)
    if isinstance(actual, str) or (kind is None and isinstance(actual, bool | int | float)):
        left, right = text(actual), text(literal)
        if definition is None or not definition.case_exact:
            return left.casefold(), right.casefold()
        return left, right
    return None


def as_bool(value: Any) -> bool | None:
    """A bool, or the string true/false in any case, as a bool; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def is_number(value: Any) -> bool:
    """Whether ``value`` is a JSON number (an int or float, not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def instant(value: Any) -> datetime | None:
    """An aware datetime (naive ones taken as UTC) from a datetime or dateTime string."""
    parsed = value if isinstance(value, datetime) else (
        parse_datetime(value) if isinstance(value, str) else None)
    if parsed is None or parsed.tzinfo is not None:
        return parsed
    return parsed.replace(tzinfo=UTC)


def text(value: Any) -> str:
    """A scalar as comparable text: strings as they are, Booleans as true/false."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)
