"""Case-insensitive object keys: the one lookup every layer uses for SCIM names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def find_key(obj: Mapping[str, Any], name: str) -> str | None:
    """The key of ``obj`` equal to ``name`` ignoring case (an exact match wins)."""
    if name in obj:
        return name
    lowered = name.lower()
    return next((key for key in obj if key.lower() == lowered), None)


def get_ci(obj: Mapping[str, Any], name: str) -> Any:
    """The value of ``name`` in ``obj`` ignoring case; None when absent."""
    key = find_key(obj, name)
    return None if key is None else obj[key]


def set_ci(obj: dict[str, Any], name: str, value: Any) -> None:
    """Set ``name``, keeping the spelling of a key that already matches it ignoring case."""
    obj[find_key(obj, name) or name] = value


def pop_ci(obj: dict[str, Any], name: str) -> Any:
    """Remove ``name`` ignoring case and return its value; None when absent."""
    key = find_key(obj, name)
    return None if key is None else obj.pop(key)


def merge_ci(target: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Shallow-merge ``new`` into ``target`` key by key, ignoring key case."""
    for key, value in new.items():
        set_ci(target, key, value)
