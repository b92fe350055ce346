"""Reading the PatchOp envelope (RFC 7644 §3.5.2) into a list of checked operations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scim_core.errors import InvalidPath, InvalidSyntax, TooMany
from scim_core.patch.jsonvalues import clone_json

OPS = frozenset({"add", "replace", "remove"})
_MISSING: Any = object()


@dataclass(frozen=True)
class Operation:
    """One operation: ``op`` lower-case, ``path`` None when absent or blank, ``value``
    already copied (and bounded); ``has_value`` tells an absent value from ``null``."""

    index: int
    op: str
    path: str | None
    value: Any
    has_value: bool

    def label(self) -> str:
        """How error messages name the operation: ``Operations[i] (op path)``."""
        where = f" {self.path}" if self.path is not None else ""
        return f"Operations[{self.index}] ({self.op}{where})"


def _lower_keys(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    lowered: dict[str, Any] = {}
    for key, value in obj.items():
        name = key.lower() if isinstance(key, str) else key
        if name in lowered:
            raise InvalidSyntax(f"{where} has the member '{key}' more than once.")
        lowered[name] = value
    return lowered


def read_operations(body: Any, max_operations: int) -> list[Operation]:
    """The operations of a PATCH body; ``Operations`` and the op members (``op``, ``path``,
    ``value``) are matched ignoring case. ``schemas`` is not checked: Entra and other
    clients send it, but nothing depends on it."""
    if not isinstance(body, Mapping):
        raise InvalidSyntax("The PATCH body must be a JSON object with an 'Operations' list.")
    raw = _lower_keys(body, "The PATCH body").get("operations", _MISSING)
    if raw is _MISSING:
        raise InvalidSyntax("The PATCH body has no 'Operations' list.")
    if not isinstance(raw, list):
        raise InvalidSyntax("'Operations' must be a list.")
    if not raw:
        raise InvalidSyntax("'Operations' must hold at least one operation.")
    if len(raw) > max_operations:
        raise TooMany(f"A PATCH request may hold at most {max_operations} operations; "
                      f"this one has {len(raw)}.")
    return [_read_one(index, item) for index, item in enumerate(raw)]


def _read_one(index: int, item: Any) -> Operation:
    where = f"Operations[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidSyntax(f"{where} must be a JSON object.")
    members = _lower_keys(item, where)
    op = members.get("op")
    if not isinstance(op, str) or op.lower() not in OPS:
        raise InvalidSyntax(f"{where}: 'op' must be one of add, replace or remove.")
    path = members.get("path")
    if path is not None and not isinstance(path, str):
        raise InvalidPath(f"{where}: 'path' must be a string.")
    if path is not None and not path.strip():
        path = None
    has_value = "value" in members
    value = clone_json(members.get("value"), f"{where}.value")
    if op.lower() != "remove" and not has_value:
        raise InvalidSyntax(f"{where}: '{op}' needs a 'value'.")
    return Operation(index, op.lower(), path.strip() if path else None, value, has_value)
