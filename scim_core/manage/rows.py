"""Rows of the management API outside every tenant's partition (``$apikeys``,
``$idempotency``): in the store's table, or in memory beside a memory store."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode


class RowExists(Exception):
    """``insert`` found a row under that key."""


class SideRows(Protocol):
    """Plain rows by partition and key; values are str, int, float or bool."""

    def get(self, partition: str, key: str) -> dict[str, Any] | None: ...

    def insert(self, partition: str, key: str, values: dict[str, Any]) -> None: ...

    def replace(self, partition: str, key: str, values: dict[str, Any]) -> None: ...

    def delete(self, partition: str, key: str) -> None: ...

    def scan(self, partition: str) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def below(self, partition: str, name: str, limit: float, *, most: int) -> list[str]:
        """At most ``most`` keys of rows whose number ``name`` is below ``limit``."""
        ...

    def delete_many(self, partition: str, keys: list[str]) -> None:
        """Delete rows (absent ones are fine), in batches of up to 100."""
        ...


class TableRows:
    """Rows of a ``TableStore``'s table (its sessions translate storage failures)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def get(self, partition: str, key: str) -> dict[str, Any] | None:
        with self._store.session():
            found = self._store.read(partition, key)
        return None if found is None else _plain(found)

    def insert(self, partition: str, key: str, values: dict[str, Any]) -> None:
        with self._store.session():
            try:
                self._store.table.create_entity({"PartitionKey": partition, "RowKey": key,
                                                 **values})
            except ResourceExistsError:
                raise RowExists(key) from None

    def replace(self, partition: str, key: str, values: dict[str, Any]) -> None:
        with self._store.session():
            self._store.table.upsert_entity({"PartitionKey": partition, "RowKey": key,
                                             **values}, mode=UpdateMode.REPLACE)

    def delete(self, partition: str, key: str) -> None:
        with self._store.session(), contextlib.suppress(ResourceNotFoundError):
            self._store.table.delete_entity(partition, key)

    def scan(self, partition: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._store.session():
            rows = list(self._store.table.query_entities(
                "PartitionKey eq @p", parameters={"p": partition}))
        for entity in rows:
            yield str(entity["RowKey"]), _plain(entity)

    def below(self, partition: str, name: str, limit: float, *, most: int) -> list[str]:
        found: list[str] = []
        with self._store.session():
            # The filter runs in the service; only the keys come back.
            pages = self._store.table.query_entities(
                f"PartitionKey eq @p and {name} lt @limit",
                parameters={"p": partition, "limit": float(limit)}, select=["RowKey"],
                results_per_page=min(most, 1000))
            for entity in pages:
                found.append(str(entity["RowKey"]))
                if len(found) >= most:
                    break
        return found

    def delete_many(self, partition: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 100):
            chunk = keys[start:start + 100]
            with self._store.session():
                try:
                    self._store.table.submit_transaction(
                        [("delete", {"PartitionKey": partition, "RowKey": key})
                         for key in chunk])
                    continue
                except (TableTransactionError, ResourceNotFoundError):
                    pass  # one was gone already: the rest one by one
            for key in chunk:
                self.delete(partition, key)


class MemoryRows:
    """Rows in process memory, one set per memory store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, partition: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._rows.get((partition, key))
            return None if found is None else dict(found)

    def insert(self, partition: str, key: str, values: dict[str, Any]) -> None:
        with self._lock:
            if (partition, key) in self._rows:
                raise RowExists(key)
            self._rows[(partition, key)] = dict(values)

    def replace(self, partition: str, key: str, values: dict[str, Any]) -> None:
        with self._lock:
            self._rows[(partition, key)] = dict(values)

    def delete(self, partition: str, key: str) -> None:
        with self._lock:
            self._rows.pop((partition, key), None)

    def scan(self, partition: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._lock:
            found = sorted((k, dict(v)) for (p, k), v in self._rows.items() if p == partition)
        yield from found

    def below(self, partition: str, name: str, limit: float, *, most: int) -> list[str]:
        with self._lock:
            found = sorted(k for (p, k), v in self._rows.items() if p == partition
                           and isinstance(v.get(name), int | float) and v[name] < limit)
        return found[:most]

    def delete_many(self, partition: str, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._rows.pop((partition, key), None)


def _plain(entity: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(entity).items() if k not in ("PartitionKey", "RowKey")}


_MEMORY: weakref.WeakKeyDictionary[Any, MemoryRows] = weakref.WeakKeyDictionary()
_MEMORY_LOCK = threading.Lock()


def side_rows(store: Any) -> SideRows:
    """The side rows of ``store``: its table's, or (memory store) the same in-memory set
    for the same store, so the API and the admin command over it agree."""
    if getattr(store, "table", None) is not None and hasattr(store, "session"):
        return TableRows(store)
    with _MEMORY_LOCK:
        found = _MEMORY.get(store)
        if found is None:
            found = _MEMORY[store] = MemoryRows()
        return found
