"""Table keys: how tenants, ids and index values become PartitionKeys and RowKeys
(docs/architecture.md, "Table keys")."""

from __future__ import annotations

import base64
import hashlib
import re

from scim_core.store.base import GROUP, USER

COMPONENT_BUDGET = 150
"""Longest encoded component, in UTF-16 code units, before it is hashed."""

HASH_MARK = "%h"
_HASH_PREFIX_BUDGET = COMPONENT_BUDGET - len(HASH_MARK) - 43
_ESCAPED = re.compile("[%/\\\\#?:'\u2028\u2029\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""The characters a component percent-encodes (docs/architecture.md, "Table keys")."""

KIND_PREFIXES: dict[str, str] = {USER: "user", GROUP: "group"}


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
    """``value`` as a key component: percent-encoded, or hashed when too long."""
    encoded = _ESCAPED.sub(_escape, value)
    if utf16_units(encoded) <= COMPONENT_BUDGET:
        return encoded
    return _readable_prefix(encoded, _HASH_PREFIX_BUDGET) + HASH_MARK + digest(value)


def prefix_range(prefix: str) -> tuple[str, str]:
    """The RowKey bounds ``[low, high)`` of every key that starts with ``prefix``
    (which ends with ``:``)."""
    return prefix, prefix[:-1] + ";"


def _kind(kind: str) -> str:
    try:
        return KIND_PREFIXES[kind]
    except KeyError:
        raise ValueError(f"unknown resource kind {kind!r}") from None


def partition_key(tenant: str) -> str:
    """The PartitionKey of a tenant."""
    return encode_component(tenant)


def document_key(kind: str, resource_id: str) -> str:
    """The RowKey of a resource's document row."""
    return f"{_kind(kind)}:{encode_component(resource_id)}"


def documents_range(kind: str) -> tuple[str, str]:
    """The RowKey range of every document row of ``kind``."""
    return prefix_range(f"{_kind(kind)}:")


def unique_index_key(kind: str, name: str, value: str) -> str:
    """The RowKey of a unique index row."""
    return f"ux:{_kind(kind)}:{encode_component(name)}:{encode_component(value)}"


def index_key(kind: str, name: str, value: str, resource_id: str) -> str:
    """The RowKey of one holder's row of a non-unique index value."""
    prefix = f"ix:{_kind(kind)}:{encode_component(name)}:{encode_component(value)}:"
    return prefix + encode_component(resource_id)


def index_range(kind: str, name: str, value: str) -> tuple[str, str]:
    """The RowKey range of a non-unique index value's rows, one per holder."""
    return prefix_range(f"ix:{_kind(kind)}:{encode_component(name)}:{encode_component(value)}:")


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
