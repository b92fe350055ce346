"""JSON value helpers for PATCH: bounded copies and null removal."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scim_core.errors import InvalidValue

MAX_DEPTH = 32


def clone_json(value: Any, where: str, depth: int = 0) -> Any:
    """A deep copy of a JSON value, refusing nesting deeper than ``MAX_DEPTH``, non-finite
    numbers and anything json.loads cannot produce (so stored values always serialise)."""
    if depth > MAX_DEPTH:
        raise InvalidValue(f"'{where}' is nested more than {MAX_DEPTH} levels deep.")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"'{where}' must be a finite number.")
        return value
    if isinstance(value, list):
        return [clone_json(item, where, depth + 1) for item in value]
    if isinstance(value, Mapping):
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidValue(f"'{where}' has a non-string object key.")
            copied[key] = clone_json(item, where, depth + 1)
        return copied
    raise InvalidValue(f"'{where}' is not a JSON value.")


def without_nulls(value: Any) -> Any:
    """``value`` with every null object member and list item left out (RFC 7643 §2.5: null
    means unassigned, and SCIM responses must not carry nulls)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value if v is not None]
    return value
