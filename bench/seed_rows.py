"""Users written straight into a tenant's partition with the store's own entity builders, in
transactions of 99 rows: how the paging suite and tests/test_paging.py seed 100,000 users
in minutes instead of hours of POSTs."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient

from scim_core.store import USER, IndexKey, Meta
from scim_core.store.tables import keys
from scim_core.store.tables.entities import document_entity, index_entity

SEED_META = Meta("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", 'W/"seeded"')
BATCH = 99


def user_id(tag: str, n: int) -> str:
    """The id of seeded user ``n``: random-looking (as uuid4 ids are), and reproducible."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/{n}"))


def _rows(tenant: str, tag: str, first: int, last: int,
          padding: int) -> Iterator[tuple[str, dict[str, Any]]]:
    partition = keys.partition_key(tenant)
    for n in range(first, last):
        resource_id = user_id(tag, n)
        name = f"{tag}.{n}@contoso.example"
        key = IndexKey("userName", name.casefold(), True)
        index_row = keys.unique_index_key(USER, key.name, key.value)
        document: dict[str, Any] = {"userName": name, "active": True,
                                    "name": {"givenName": "Seeded", "familyName": f"User {n}"}}
        if padding:
            document["title"] = "x" * padding
        yield "upsert", document_entity(partition, keys.document_key(USER, resource_id),
                                        kind=USER, resource_id=resource_id,
                                        document=document, meta=SEED_META,
                                        index_rows=[index_row])
        yield "upsert", index_entity(partition, index_row, key=key, resource_id=resource_id)


def seed_user_rows(client: TableClient, tenant: str, tag: str, first: int, last: int, *,
                   padding: int = 0, workers: int = 4) -> list[str]:
    """Users ``first..last-1`` of ``tag`` (document and userName index rows, as the store
    writes them) in ``tenant``; their ids. ``padding`` characters of ``title`` make each
    document that much larger. Writes no feed row: the store counts these users once, on
    the first listing after its first write."""
    batches: list[list[tuple[str, dict[str, Any]]]] = [[]]
    for operation in _rows(tenant, tag, first, last, padding):
        if len(batches[-1]) >= BATCH - 1:  # a user's two rows stay together
            batches.append([])
        batches[-1].append(operation)
    with contextlib.suppress(ResourceExistsError):
        client.create_table()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(client.submit_transaction, [b for b in batches if b]))
    return [user_id(tag, n) for n in range(first, last)]
