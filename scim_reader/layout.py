"""The table layout, the one home of its keys (docs/host-app.md, "Table layout"): the SCIM
store writes with these functions (``scim_core.store.tables.keys`` and ``feed`` import
them) and the reader reads with them. Standard library only, so the reader installs
without the service."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

DEFAULT_TENANT = "default"
"""The tenant the endpoint's ``/scim/v2`` serves."""

REGISTRY_PARTITION = "$tenants"
"""The partition of the tenant registry, outside every tenant's partition."""

LAYOUT_VERSION = 1
"""The document-row layout this reader understands."""

USER = "user"
GROUP = "group"

USER_NAME_INDEX = "userName"
"""Unique index of users, case-folded."""

DISPLAY_NAME_INDEX = "displayName"
"""Unique index of groups, case-folded."""

COMPONENT_BUDGET = 150
"""Longest encoded component, in UTF-16 code units, before it is hashed."""

HASH_MARK = "%h"
_HASH_PREFIX_BUDGET = COMPONENT_BUDGET - len(HASH_MARK) - 43
_ESCAPED = re.compile("[%/\\\\#?:'\u2028\u2029\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""The characters a component percent-encodes (docs/architecture.md, "Table keys")."""


def utf16_units(text: str) -> int:
    """The length of ``text`` in UTF-16 code units, the unit of Table Storage's limits."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogatepass"))


def _readable_prefix(encoded: str, budget: int) -> str:
    """The longest start of ``encoded`` within ``budget`` code units that does not cut
    a ``%XX`` escape in two."""
    units = 0
    end = 0
    for index, ch in enumerate(encoded):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > budget:
            break
        end = index + 1
    cut = encoded[:end]
    tail = cut.rfind("%")
    if tail != -1 and tail > len(cut) - 3:
        cut = cut[:tail]
    return cut


def digest(value: str) -> str:
    """The URL-safe base64 SHA-256 of ``value`` (no padding), for hashed components."""
    raw = hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def encode_component(value: str) -> str:
    """``value`` as a key component: percent-encoded, or shortened and hashed when its
    encoded form is longer than 150 UTF-16 code units."""
    encoded = _ESCAPED.sub(_escape, value)
    if utf16_units(encoded) <= COMPONENT_BUDGET:
        return encoded
    return _readable_prefix(encoded, _HASH_PREFIX_BUDGET) + HASH_MARK + digest(value)


def prefix_range(prefix: str) -> tuple[str, str]:
    """The RowKey bounds ``[low, high)`` of every key that starts with ``prefix`` (which
    ends with ``:``; ``;`` is the character after it)."""
    return prefix, prefix[:-1] + ";"


def partition_key(tenant: str) -> str:
    """The PartitionKey of a tenant."""
    return encode_component(tenant)


def document_key(kind: str, resource_id: str) -> str:
    """The RowKey of a user's or group's document row."""
    return f"{kind}:{encode_component(resource_id)}"


def documents_range(kind: str) -> tuple[str, str]:
    """The RowKey range of every document row of ``kind`` (``user`` or ``group``)."""
    return prefix_range(f"{kind}:")


def unique_index_key(kind: str, name: str, value: str) -> str:
    """The RowKey of a unique index row (``value`` already normalised)."""
    return f"ux:{kind}:{encode_component(name)}:{encode_component(value)}"


def index_key(kind: str, name: str, value: str, resource_id: str) -> str:
    """The RowKey of one holder's row of a non-unique index value."""
    prefix = f"ix:{kind}:{encode_component(name)}:{encode_component(value)}:"
    return prefix + encode_component(resource_id)


def index_range(kind: str, name: str, value: str) -> tuple[str, str]:
    """The RowKey range of a non-unique index value's rows, one per holder."""
    return prefix_range(f"ix:{kind}:{encode_component(name)}:{encode_component(value)}:")


def member_key(group_id: str, user_id: str) -> str:
    """The RowKey of a membership, seen from the group."""
    return f"member:{encode_component(group_id)}:{encode_component(user_id)}"


def members_range(group_id: str) -> tuple[str, str]:
    """The RowKey range of a group's membership rows."""
    return prefix_range(f"member:{encode_component(group_id)}:")


def member_of_key(user_id: str, group_id: str) -> str:
    """The RowKey of a membership, seen from the user."""
    return f"memberOf:{encode_component(user_id)}:{encode_component(group_id)}"


def member_of_range(user_id: str) -> tuple[str, str]:
    """The RowKey range of a user's membership rows."""
    return prefix_range(f"memberOf:{encode_component(user_id)}:")


def folded(value: str) -> str:
    """An index value of ``userName`` or ``displayName`` as the index stores it."""
    return value.casefold()


def document_of(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The attribute document a ``user:`` or ``group:`` row holds, joined from its chunks.
    Raises ``ValueError`` for a row of a layout this reader does not know."""
    layout = entity.get("layout", LAYOUT_VERSION)
    if layout != LAYOUT_VERSION:
        raise ValueError(f"document row layout {layout!r} is not {LAYOUT_VERSION}; "
                         "upgrade scim_reader")
    count = int(entity["docChunks"])
    document: dict[str, Any] = json.loads("".join(entity[f"doc_{i}"] for i in range(count)))
    return document


# -- the change feed (docs/host-app.md, "Table layout") -----------------------------------

FEED_ROW = "feed"
"""The RowKey of a tenant's feed row: ``position`` (the last position taken) and ``floor``
(the last position retention removed)."""

EVENT_PREFIX = "event:"
EVENTS_END = "event;"
POSITION_DIGITS = 16


def event_key(position: int) -> str:
    """The RowKey of the event at ``position``: ``event:`` and 16 digits."""
    return f"{EVENT_PREFIX}{position:0{POSITION_DIGITS}d}"


def events_after(position: int) -> tuple[str, str]:
    """The RowKey bounds ``(low, high)``, both exclusive, of the events after ``position``."""
    return event_key(position), EVENTS_END


def resource_of(entity: Mapping[str, Any]) -> dict[str, Any] | None:
    """The resource an event row holds, joined from its chunks (None when it holds none)."""
    count = int(entity.get("resourceChunks") or 0)
    if not count:
        return None
    resource: dict[str, Any] = json.loads("".join(entity[f"resource_{i}"]
                                                  for i in range(count)))
    return resource


def names_of(entity: Mapping[str, Any], column: str) -> tuple[str, ...]:
    """The strings of an event row's JSON-array column (``attributes``, ``members``)."""
    names = json.loads(entity.get(column) or "[]")
    if not isinstance(names, list):
        raise ValueError(f"{column} is not a JSON array")
    return tuple(str(name) for name in names)
