"""Table keys: how tenants, ids and index values become PartitionKeys and RowKeys.

Every variable part of a key (tenant, id, index name, index value) is one *component*,
encoded so that any string is storable and no component can reach into another:

* ``%`` itself, the characters Table keys forbid (``/ \\ # ?``, U+0000-U+001F,
  U+007F-U+009F), the separator ``:``, the quote ``'`` (OData's string delimiter), the
  line and paragraph separators U+2028/U+2029 (Azurite splits batch request lines on them,
  so a key holding one cannot be deleted in a batch) and lone surrogates are
  percent-encoded as the UTF-8 bytes of the character (``%2F``).
  Every other character is kept, so ordinary ids and names stay readable and
  ``urllib.parse.unquote`` reverses the encoding.
* A component whose encoded form is longer than ``COMPONENT_BUDGET`` UTF-16 code units is
  replaced by a readable prefix, the marker ``%h`` and the URL-safe base64 SHA-256 of the
  whole value. ``%h`` cannot occur otherwise (``%`` is always followed by two hex digits),
  so hashed and plain forms never meet. Rows keyed by a hashed component store the full
  value in a property, and readers compare it, so a collision cannot match a wrong row.

Three components of at most 150 code units plus fixed prefixes stay below Table's key
limit of 1 KiB (512 UTF-16 code units).

RowKeys (``{x}`` is an encoded component; ``user``/``group`` is the kind):

========================================  ==============================================
``user:{id}`` / ``group:{id}``            the resource document and its meta
``ux:{kind}:{name}:{value}``              unique index row -> ``id``
``ix:{kind}:{name}:{value}:{id}``         non-unique index row
``member:{groupId}:{userId}``             one membership (``display`` optional)
``memberOf:{userId}:{groupId}``           the same membership, seen from the user
========================================  ==============================================

A prefix ending in ``:`` is queried as ``RowKey ge 'p:' and RowKey lt 'p;'`` (``;`` is
the character after ``:``); since ``:`` never occurs inside a component, that range holds
exactly the rows of that prefix.
"""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import unquote

from scim_core.store.base import GROUP, USER

COMPONENT_BUDGET = 150
"""Longest encoded component, in UTF-16 code units, before it is hashed."""

HASH_MARK = "%h"
_HASH_PREFIX_BUDGET = COMPONENT_BUDGET - len(HASH_MARK) - 43
_ESCAPED = re.compile("[%/\\\\#?:'\u2028\u2029\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""The characters a component percent-encodes (see above)."""

KIND_PREFIXES = {USER: "user", GROUP: "group"}


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
    raw = hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def encode_component(value: str) -> str:
    """``value`` as a key component: percent-encoded, or hashed when too long."""
    encoded = _ESCAPED.sub(_escape, value)
    if utf16_units(encoded) <= COMPONENT_BUDGET:
        return encoded
    return _readable_prefix(encoded, _HASH_PREFIX_BUDGET) + HASH_MARK + digest(value)


def decode_component(component: str) -> str | None:
    """The original value of a component, or None when it was hashed (read the row's
    property holding the full value instead)."""
    if HASH_MARK in component:
        return None
    return unquote(component, encoding="utf-8", errors="surrogatepass")


def is_hashed(component: str) -> bool:
    return HASH_MARK in component


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
    return encode_component(tenant)


def document_key(kind: str, resource_id: str) -> str:
    return f"{_kind(kind)}:{encode_component(resource_id)}"


def documents_range(kind: str) -> tuple[str, str]:
    return prefix_range(f"{_kind(kind)}:")


def unique_index_key(kind: str, name: str, value: str) -> str:
    return f"ux:{_kind(kind)}:{encode_component(name)}:{encode_component(value)}"


def index_key(kind: str, name: str, value: str, resource_id: str) -> str:
    prefix = f"ix:{_kind(kind)}:{encode_component(name)}:{encode_component(value)}:"
    return prefix + encode_component(resource_id)


def index_range(kind: str, name: str, value: str) -> tuple[str, str]:
    return prefix_range(f"ix:{_kind(kind)}:{encode_component(name)}:{encode_component(value)}:")


def member_key(group_id: str, user_id: str) -> str:
    return f"member:{encode_component(group_id)}:{encode_component(user_id)}"


def members_range(group_id: str) -> tuple[str, str]:
    return prefix_range(f"member:{encode_component(group_id)}:")


def member_of_key(user_id: str, group_id: str) -> str:
    return f"memberOf:{encode_component(user_id)}:{encode_component(group_id)}"


def member_of_range(user_id: str) -> tuple[str, str]:
    return prefix_range(f"memberOf:{encode_component(user_id)}:")
