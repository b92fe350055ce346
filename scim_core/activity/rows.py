"""Where activity rows are kept: the ``ActivityRows`` protocol, its memory form, and the
key layout shared by both (``layout``)."""

from __future__ import annotations

import bisect
import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["ActivityRows", "ActivityStoreError", "MemoryActivityRows", "memory_rows"]

_FORBIDDEN = set("/\\#?") | {chr(c) for c in range(32)}
_ENTRIES = re.compile(r"\|e\d{8}$")
Row = dict[str, Any]
"""A row: its properties plus ``PartitionKey`` and ``RowKey`` (and ``etag`` when read)."""


class ActivityStoreError(Exception):
    """Activity storage failed; the message says how, without secrets."""


class ActivityRows(Protocol):
    """The rows of the activity log, kept apart from every tenant's data partition."""

    def submit(self, partition: str, rows: Sequence[Row]) -> None:
        """Upsert ``rows`` (at most 100, all of ``partition``) in one atomic batch."""
        ...

    def range(self, partition: str, low: str, high: str, *, limit: int) -> list[Row]:
        """At most ``limit`` rows of ``partition`` with ``low < RowKey < high``, in key order."""
        ...

    def partitions(self, low: str, high: str, *, limit: int) -> list[tuple[str, str]]:
        """At most ``limit`` (PartitionKey, RowKey) pairs with ``low < PartitionKey < high``."""
        ...

    def put(self, row: Row, *, etag: str | None) -> bool:
        """Write ``row``: replace it where its ``etag`` still matches, or (``etag`` None)
        insert it where absent. False when another writer came first."""
        ...

    def delete(self, partition: str, row_keys: Sequence[str]) -> None:
        """Delete rows of ``partition`` (at most 100) in one batch; absent ones are fine."""
        ...

    def put_all(self, partition: str, rows: Sequence[Row]) -> bool:
        """``put`` every row (each with its ``etag``, or None to insert) in one atomic
        batch; False, writing none, when another writer came first to any."""
        ...


MEMORY_ENTRY_ROWS = 20_000
"""The most rows the memory form keeps per entries partition (a tenant's day): past it the
oldest give way, so a long-running dev host's log stays bounded."""


class MemoryActivityRows:
    """``ActivityRows`` in process memory (the memory store's). ``entry_rows``: the most
    rows kept per entries partition (``<tenant>|e<day>``); the oldest go first."""

    def __init__(self, *, entry_rows: int = MEMORY_ENTRY_ROWS) -> None:
        self.entry_rows = entry_rows
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str, Row]] = {}
        self._keys: dict[str, list[str]] = {}
        self._version = 0
        self.failing = False
        """Tests: every call raises ``ActivityStoreError`` while set."""

    def _check(self) -> None:
        if self.failing:
            raise ActivityStoreError("memory activity rows set to fail")

    def _put(self, row: Row) -> None:
        partition, key = row["PartitionKey"], row["RowKey"]
        if _FORBIDDEN & set(partition + key):
            raise ActivityStoreError("a key holds a character Table Storage refuses")
        rows = self._rows.setdefault(partition, {})
        if key not in rows:
            bisect.insort(self._keys.setdefault(partition, []), key)
        self._version += 1
        rows[key] = {**row, "etag": str(self._version)}
        if len(rows) > self.entry_rows + self.entry_rows // 10 and _ENTRIES.search(partition):
            self._trim(partition)

    def _trim(self, partition: str) -> None:
        """Drop the oldest rows of an entries partition down to ``entry_rows`` (a tenth
        more are let in between trims, so a trim's sort is paid once per many writes)."""
        keys = self._keys[partition]
        rows = self._rows[partition]
        # Entry and name rows both end in "|<inverted ms>|<unique>": the largest is oldest.
        oldest = sorted(keys, key=lambda k: k.rsplit("|", 2)[-2:], reverse=True)
        for key in oldest[:len(keys) - self.entry_rows]:
            del rows[key]
        self._keys[partition] = sorted(rows)

    def submit(self, partition: str, rows: Sequence[Row]) -> None:
        """Upsert ``rows`` of ``partition`` all at once."""
        if len(rows) > 100 or any(r["PartitionKey"] != partition for r in rows):
            raise ValueError("a batch is at most 100 rows of one partition")
        with self._lock:
            self._check()
            for row in rows:
                self._put(dict(row))

    def range(self, partition: str, low: str, high: str, *, limit: int) -> list[Row]:
        """Rows of ``partition`` strictly between ``low`` and ``high``."""
        with self._lock:
            self._check()
            keys = self._keys.get(partition, [])
            start = bisect.bisect_right(keys, low)
            found: list[Row] = []
            for key in keys[start:]:
                if key >= high or len(found) >= limit:
                    break
                found.append(dict(self._rows[partition][key]))
            return found

    def partitions(self, low: str, high: str, *, limit: int) -> list[tuple[str, str]]:
        """(PartitionKey, RowKey) pairs of partitions strictly between ``low`` and ``high``."""
        with self._lock:
            self._check()
            found: list[tuple[str, str]] = []
            for partition in sorted(p for p in self._keys if low < p < high):
                for key in self._keys[partition]:
                    if len(found) >= limit:
                        return found
                    found.append((partition, key))
            return found

    def put(self, row: Row, *, etag: str | None) -> bool:
        """Conditional replace or insert."""
        with self._lock:
            self._check()
            current = self._rows.get(row["PartitionKey"], {}).get(row["RowKey"])
            if (current is None) != (etag is None) or (
                    current is not None and current["etag"] != etag):
                return False
            self._put({k: v for k, v in row.items() if k != "etag"})
            return True

    def put_all(self, partition: str, rows: Sequence[Row]) -> bool:
        """Conditional replaces and inserts, all or none."""
        with self._lock:
            self._check()
            for row in rows:
                current = self._rows.get(partition, {}).get(row["RowKey"])
                etag = row.get("etag")
                if (current is None) != (etag is None) or (
                        current is not None and current["etag"] != etag):
                    return False
            for row in rows:
                self._put({k: v for k, v in row.items() if k != "etag"})
            return True

    def delete(self, partition: str, row_keys: Sequence[str]) -> None:
        """Remove rows of ``partition``."""
        with self._lock:
            self._check()
            rows = self._rows.get(partition, {})
            keys = self._keys.get(partition, [])
            for key in row_keys:
                if rows.pop(key, None) is not None:
                    keys.remove(key)
            if not rows:
                self._rows.pop(partition, None)
                self._keys.pop(partition, None)

    def all_rows(self) -> list[Row]:
        """Every row (tests scan them raw)."""
        with self._lock:
            return [dict(r) for p in self._rows.values() for r in p.values()]


_MEMORY: weakref.WeakKeyDictionary[object, MemoryActivityRows] = weakref.WeakKeyDictionary()
_MEMORY_LOCK = threading.Lock()


def memory_rows(store: object) -> MemoryActivityRows:
    """The activity rows kept in memory beside ``store`` (the same for the same store, so
    an API and an admin over one memory store see the same log)."""
    with _MEMORY_LOCK:
        found = _MEMORY.get(store)
        if found is None:
            found = MemoryActivityRows()
            _MEMORY[store] = found
        return found
