"""The local secrets of a store: rows of its table (``store.tables.secrets``) or, for a
memory store, hashes kept in memory beside it (the same object for the same store, so an
API and an admin over one memory store see the same tokens)."""

from __future__ import annotations

import threading
import weakref

from scim_core.auth.local_secrets import LocalSecrets, StoredVersion
from scim_core.store.base import Store
from scim_core.store.memory import MemoryStore


class MemoryVersionRows:
    """``VersionRows`` in process memory."""

    location = "the local secrets in memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, dict[str, StoredVersion]] = {}

    def list(self, name: str) -> list[StoredVersion]:
        """The versions of ``name``, oldest first."""
        with self._lock:
            found = list(self._secrets.get(name.lower(), {}).values())
        return sorted(found, key=lambda v: (v.created, v.version))

    def put(self, version: StoredVersion) -> None:
        """Store or replace one version."""
        with self._lock:
            self._secrets.setdefault(version.name.lower(), {})[version.version] = version

    def delete(self, name: str) -> int:
        """Remove every version of ``name``."""
        with self._lock:
            return len(self._secrets.pop(name.lower(), {}))


_MEMORY: weakref.WeakKeyDictionary[object, LocalSecrets] = weakref.WeakKeyDictionary()
_MEMORY_LOCK = threading.Lock()


def memory_secrets(store: object) -> LocalSecrets:
    """The local secrets kept in memory beside ``store``."""
    with _MEMORY_LOCK:
        found = _MEMORY.get(store)
        if found is None:
            found = LocalSecrets(MemoryVersionRows())
            _MEMORY[store] = found
        return found


def local_secrets(store: Store) -> LocalSecrets:
    """The local secrets of ``store``: rows of its table for a ``TableStore``, else (a
    ``MemoryStore``, or a test's or benchmark's wrapper) kept in memory beside it."""
    if not isinstance(store, MemoryStore):
        from scim_core.store.tables.secrets import table_secrets
        from scim_core.store.tables.store import TableStore

        if isinstance(store, TableStore):
            return table_secrets(store)
    return memory_secrets(store)
