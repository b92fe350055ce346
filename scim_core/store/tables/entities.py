"""Document rows: a resource's JSON split across string properties, its meta, and size
rules (docs/architecture.md, "Document rows and size limits")."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from scim_core.kinds import Kind
from scim_core.store.base import IndexKey, Meta, Record
from scim_core.store.errors import TooLarge
from scim_core.store.tables.keys import utf16_units

LAYOUT_VERSION = 1
CHUNK_UNITS = 32_000
MAX_STRING_UNITS = 32_768
MAX_ENTITY_BYTES = 1_048_576
MAX_PROPERTIES = 252
"""255 per entity, less PartitionKey, RowKey and Timestamp."""

MAX_INDEX_ROWS = 49
"""Index rows one resource may own: an update that swaps all of them (the document, 49
deletes, 49 inserts) must fit one batch of 100, and their RowKeys (<= 461 code units
each) the ``indexRows`` property."""

META_PROPERTIES = ("created", "lastModified", "version")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def document_json(document: Mapping[str, Any]) -> str:
    """Compact JSON that keeps non-ASCII text as is (UTF-16 storage makes ``\\uXXXX``
    escapes three times larger) but escapes lone surrogates, which cannot be sent."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def split_chunks(text: str, units: int = CHUNK_UNITS) -> list[str]:
    """``text`` in pieces of at most ``units`` UTF-16 code units, never inside a character."""
    if utf16_units(text) <= units:
        return [text]
    chunks: list[str] = []
    start = 0
    count = 0
    for index, ch in enumerate(text):
        width = 2 if ord(ch) > 0xFFFF else 1
        if count + width > units:
            chunks.append(text[start:index])
            start, count = index, 0
        count += width
    chunks.append(text[start:])
    return chunks


def entity_size(entity: Mapping[str, Any]) -> int:
    """Bytes an entity counts against the 1 MiB limit, by the service's published formula."""
    size = 4 + 2 * (utf16_units(entity["PartitionKey"]) + utf16_units(entity["RowKey"]))
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        size += 8 + 2 * len(name)
        if isinstance(value, str):
            size += 4 + 2 * utf16_units(value)
        elif isinstance(value, bool):
            size += 1
        elif isinstance(value, int):
            size += 4 if -(2**31) <= value < 2**31 else 8
        else:
            size += 8
    return size


def meta_properties(meta: Meta) -> dict[str, str]:
    """The meta as document-row properties."""
    return {"created": meta.created, "lastModified": meta.last_modified, "version": meta.version}


def document_entity(partition: str, row: str, *, kind: str, resource_id: str,
                    document: Mapping[str, Any], meta: Meta,
                    index_rows: Sequence[str]) -> dict[str, Any]:
    """The whole document row; raises ``TooLarge`` if it cannot be one entity."""
    if len(index_rows) > MAX_INDEX_ROWS:
        raise TooLarge(
            f"The resource has {len(index_rows)} indexed values; at most {MAX_INDEX_ROWS} "
            "can be stored.")
    chunks = split_chunks(document_json(document))
    entity: dict[str, Any] = {
        "PartitionKey": partition,
        "RowKey": row,
        "layout": LAYOUT_VERSION,
        "kind": kind,
        "id": resource_id,
        **meta_properties(meta),
        "indexRows": json.dumps(list(index_rows)),
        "docChunks": len(chunks),
    }
    entity.update({f"doc_{i}": chunk for i, chunk in enumerate(chunks)})
    if (len(entity) - 2 > MAX_PROPERTIES or entity_size(entity) > MAX_ENTITY_BYTES
            or utf16_units(entity["id"]) > MAX_STRING_UNITS):
        raise TooLarge("The resource is too large to store (the limit is about 1 MiB).")
    return entity


COPIED_PROPERTIES = ("docChunks", "doc_0", *META_PROPERTIES, "epoch")
"""What a unique index row holds of its user's document row when it carries a copy."""
NO_COPY = {"docChunks": 0}
"""Merged into a unique index row whose copy is to be dropped (the row only points)."""


def document_copy(entity: Mapping[str, Any]) -> dict[str, Any] | None:
    """The properties of a document row a unique index row carries, so that a lookup by
    its value is one read; None for a document of more than one chunk (the index row then
    points to the document only, and a lookup reads both)."""
    if int(entity["docChunks"]) != 1:
        return None
    return {name: entity[name] for name in COPIED_PROPERTIES if name in entity}


def has_copy(entity: Mapping[str, Any]) -> bool:
    """Whether an index row carries its resource's document (rows written before copies,
    and rows of too large a document, do not)."""
    return int(entity.get("docChunks") or 0) > 0


def index_entity(partition: str, row: str, *, key: IndexKey,
                 resource_id: str) -> dict[str, Any]:
    """An index row: the owner's id, and the full value (the key may hold only its hash)."""
    if max(utf16_units(key.value), utf16_units(resource_id)) > MAX_STRING_UNITS:
        raise TooLarge(f"The {key.name} value is too large to store.")
    return {"PartitionKey": partition, "RowKey": row, "id": resource_id, "name": key.name,
            "value": key.value}


def stored_index_rows(entity: Mapping[str, Any]) -> list[str]:
    """The RowKeys of the index rows a document row says it owns."""
    rows = json.loads(entity.get("indexRows") or "[]")
    return [str(row) for row in rows]


def stored_document(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The document a document row holds, joined from its chunks."""
    count = int(entity["docChunks"])
    document: dict[str, Any] = json.loads("".join(entity[f"doc_{i}"] for i in range(count)))
    return document


def record_from_entity(kind: Kind, entity: Mapping[str, Any], etag: str, *,
                       index_rows: bool = True) -> Record:
    """The ``Record`` a document row holds (or an index row's copy of it, without
    ``index_rows``)."""
    meta = Meta(entity["created"], entity["lastModified"], entity["version"])
    return Record(kind, entity["id"], stored_document(entity), meta, etag,
                  tuple(stored_index_rows(entity)) if index_rows else None)
