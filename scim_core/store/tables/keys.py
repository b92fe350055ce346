"""Table keys for the store's kinds: the layout's functions (``scim_reader.layout``, their
one home, shared with the reader) keyed by ``Kind`` (docs/architecture.md, "Table keys")."""

from __future__ import annotations

from scim_core.store.base import GROUP, USER
from scim_reader import layout
from scim_reader.layout import (
    COMPONENT_BUDGET,
    HASH_MARK,
    digest,
    encode_component,
    member_key,
    member_of_key,
    member_of_range,
    members_range,
    partition_key,
    prefix_range,
    utf16_units,
)

__all__ = [
    "COMPONENT_BUDGET",
    "HASH_MARK",
    "KIND_PREFIXES",
    "digest",
    "document_key",
    "documents_range",
    "encode_component",
    "index_key",
    "index_range",
    "is_unique_index_key",
    "member_key",
    "member_of_key",
    "member_of_range",
    "members_range",
    "partition_key",
    "prefix_range",
    "unique_index_key",
    "utf16_units",
]

KIND_PREFIXES: dict[str, str] = {USER: layout.USER, GROUP: layout.GROUP}


def _kind(kind: str) -> str:
    try:
        return KIND_PREFIXES[kind]
    except KeyError:
        raise ValueError(f"unknown resource kind {kind!r}") from None


def document_key(kind: str, resource_id: str) -> str:
    """The RowKey of a resource's document row."""
    return layout.document_key(_kind(kind), resource_id)


def documents_range(kind: str) -> tuple[str, str]:
    """The RowKey range of every document row of ``kind``."""
    return layout.documents_range(_kind(kind))


def unique_index_key(kind: str, name: str, value: str) -> str:
    """The RowKey of a unique index row."""
    return layout.unique_index_key(_kind(kind), name, value)


def index_key(kind: str, name: str, value: str, resource_id: str) -> str:
    """The RowKey of one holder's row of a non-unique index value."""
    return layout.index_key(_kind(kind), name, value, resource_id)


def index_range(kind: str, name: str, value: str) -> tuple[str, str]:
    """The RowKey range of a non-unique index value's rows, one per holder."""
    return layout.index_range(_kind(kind), name, value)


def is_unique_index_key(kind: str, row_key: str) -> bool:
    """Whether ``row_key`` is the RowKey of one of ``kind``'s unique index rows."""
    return row_key.startswith(layout.unique_index_key(_kind(kind), "", "").rstrip(":") + ":")
