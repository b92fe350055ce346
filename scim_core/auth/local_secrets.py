"""Tenant tokens with no Azure at all: the part of Key Vault's ``SecretClient`` that the
token sources and the admin operations use, kept beside the data (docs/architecture.md,
"Tenants").

``local_secrets(store)`` is what the app and the admin commands use when
``SCIM_KEYVAULT_URL`` is unset: for a Table Storage store the versions are rows of the
store's own table (partition ``$secrets``, so locally they live in Azurite's data, which git
ignores), for the memory store they live in memory beside that store's data. Versions behave
as Key Vault's do: each ``set_secret`` adds a version, listed in creation order; a disabled
version's value cannot be read (403 ``SecretDisabled``); a secret that is not there raises
``ResourceNotFoundError``. Unlike a vault with soft delete, a deleted secret is gone at once
and its name can be used again.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError, ODataV4Format, ResourceNotFoundError

SECRETS_PARTITION = "$secrets"
"""Outside every tenant's partition and the registry's: tenant ids never hold ``$``."""

LOCAL_VAULT_URL = "local://secrets"
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")


@dataclass(frozen=True)
class LocalSecretProperties:
    """A version's attributes, named as ``azure.keyvault.secrets.SecretProperties``."""

    name: str
    version: str
    created_on: datetime
    updated_on: datetime
    enabled: bool = True
    not_before: datetime | None = None
    expires_on: datetime | None = None
    content_type: str | None = None
    tags: dict[str, str] | None = None
    vault_url: str = LOCAL_VAULT_URL

    @property
    def id(self) -> str:
        """The version's identifier, shaped like Key Vault's."""
        return f"{self.vault_url}/secrets/{self.name}/{self.version}"


@dataclass(frozen=True)
class LocalSecret:
    """A version with its value, named as ``azure.keyvault.secrets.KeyVaultSecret``."""

    properties: LocalSecretProperties
    value: str = field(repr=False)

    @property
    def name(self) -> str:
        """The secret's name."""
        return self.properties.name

    @property
    def id(self) -> str:
        """The version's identifier."""
        return self.properties.id


@dataclass(frozen=True)
class LocalDeletedSecret:
    """What ``begin_delete_secret`` returns: no recovery id, since nothing is kept."""

    name: str
    deleted_date: datetime
    recovery_id: str | None = None
    scheduled_purge_date: datetime | None = None


class _Done:
    """A finished delete, shaped like the Key Vault SDK's poller."""

    def __init__(self, deleted: LocalDeletedSecret) -> None:
        self._deleted = deleted

    def result(self) -> LocalDeletedSecret:
        """The deleted secret."""
        return self._deleted

    def wait(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def done(self) -> bool:
        """Always True."""
        return True


@dataclass(frozen=True)
class _Version:
    """One stored version; times in Unix seconds (microsecond precision)."""

    name: str
    version: str
    value: str = field(repr=False)
    created: float
    updated: float
    enabled: bool = True
    not_before: float | None = None
    expires_on: float | None = None
    content_type: str | None = None
    tags: dict[str, str] | None = None


class _Versions(Protocol):
    """Where the versions live."""

    def list(self, name: str) -> list[_Version]:
        """The versions of ``name`` (case-insensitive), oldest first."""
        ...

    def put(self, version: _Version) -> None:
        """Store a new version or replace a stored one."""
        ...

    def delete(self, name: str) -> int:
        """Remove every version of ``name``; returns how many there were."""
        ...


class _MemoryVersions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, dict[str, _Version]] = {}

    def list(self, name: str) -> list[_Version]:
        with self._lock:
            return _ordered(self._secrets.get(name.lower(), {}).values())

    def put(self, version: _Version) -> None:
        with self._lock:
            self._secrets.setdefault(version.name.lower(), {})[version.version] = version

    def delete(self, name: str) -> int:
        with self._lock:
            return len(self._secrets.pop(name.lower(), {}))


class _TableVersions:
    """Versions as rows of a ``TableStore``'s table: RowKey ``<name>:<version>``."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def list(self, name: str) -> list[_Version]:
        low = name.lower()
        with self._store.session():
            rows = self._store.table.query_entities(
                "PartitionKey eq @p and RowKey gt @lo and RowKey lt @hi",
                parameters={"p": SECRETS_PARTITION, "lo": low + ":", "hi": low + ";"})
            return _ordered(_from_entity(row) for row in rows)

    def put(self, version: _Version) -> None:
        from azure.data.tables import UpdateMode

        with self._store.session():
            self._store.table.upsert_entity(_to_entity(version), mode=UpdateMode.REPLACE)

    def delete(self, name: str) -> int:
        found = self.list(name)
        with self._store.session():
            for version in found:
                with contextlib.suppress(ResourceNotFoundError):
                    self._store.table.delete_entity(SECRETS_PARTITION, _row_key(version))
        return len(found)


def _ordered(versions: Any) -> list[_Version]:
    return sorted(versions, key=lambda v: (v.created, v.version))


def _row_key(version: _Version) -> str:
    return f"{version.name.lower()}:{version.version}"


def _to_entity(version: _Version) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": SECRETS_PARTITION, "RowKey": _row_key(version), "name": version.name,
        "version": version.version, "value": version.value, "created": version.created,
        "updated": version.updated, "enabled": version.enabled,
    }
    for key in ("not_before", "expires_on", "content_type"):
        if getattr(version, key) is not None:
            entity[key] = getattr(version, key)
    if version.tags:
        entity["tags"] = json.dumps(version.tags)
    return entity


def _from_entity(entity: Any) -> _Version:
    tags = entity.get("tags")
    return _Version(
        name=str(entity["name"]), version=str(entity["version"]), value=str(entity["value"]),
        created=float(entity["created"]), updated=float(entity["updated"]),
        enabled=bool(entity["enabled"]), not_before=_float(entity.get("not_before")),
        expires_on=_float(entity.get("expires_on")), content_type=entity.get("content_type"),
        tags=json.loads(tags) if tags else None)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _error(status: int, code: str, message: str, inner: str | None = None
           ) -> HttpResponseError:
    """An ``HttpResponseError`` carrying status and codes as Key Vault's answers do."""
    body: dict[str, Any] = {"code": code, "message": message}
    if inner:
        body["innererror"] = {"code": inner}
    error_type = ResourceNotFoundError if status == 404 else HttpResponseError
    error = error_type(message=message)
    error.status_code = status
    error.reason = code
    error.error = ODataV4Format({"error": body})
    return error


class LocalSecrets:
    """The ``SecretClient`` methods this project uses, over local versions."""

    def __init__(self, versions: _Versions | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._versions: _Versions = versions if versions is not None else _MemoryVersions()
        self._clock = clock
        self.vault_url = LOCAL_VAULT_URL

    def __repr__(self) -> str:
        return f"LocalSecrets({type(self._versions).__name__})"

    def __enter__(self) -> LocalSecrets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to close (the store owns its table client)."""

    def list_properties_of_secret_versions(self, name: str, **kwargs: Any
                                           ) -> Iterator[LocalSecretProperties]:
        """Every version's attributes, oldest first (empty when the secret is not there)."""
        return iter([self._properties(v) for v in self._versions.list(_check(name))])

    def get_secret(self, name: str, version: str | None = None, **kwargs: Any) -> LocalSecret:
        """A version (the newest when none is named) with its value; 404 when there is no
        such version, 403 ``SecretDisabled`` when it is disabled."""
        found = self._find(name, version)
        if not found.enabled:
            raise _error(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                         "SecretDisabled")
        return LocalSecret(self._properties(found), found.value)

    def set_secret(self, name: str, value: str, *, enabled: bool | None = None,
                   content_type: str | None = None, tags: dict[str, str] | None = None,
                   not_before: datetime | None = None, expires_on: datetime | None = None,
                   **kwargs: Any) -> LocalSecret:
        """Add a new version (the newest from now on)."""
        _check(name)
        if not isinstance(value, str):
            raise _error(400, "BadParameter", "Property 'value' is required.")
        now = self._now(name)
        made = _Version(name, _version_id(now), value, now, now,
                        True if enabled is None else bool(enabled), _seconds(not_before),
                        _seconds(expires_on), content_type, dict(tags) if tags else None)
        self._versions.put(made)
        return LocalSecret(self._properties(made), made.value)

    def update_secret_properties(self, name: str, version: str | None = None, *,
                                 enabled: bool | None = None,
                                 content_type: str | None = None,
                                 not_before: datetime | None = None,
                                 expires_on: datetime | None = None,
                                 tags: dict[str, str] | None = None,
                                 **kwargs: Any) -> LocalSecretProperties:
        """Change a version's attributes (the newest when none is named)."""
        found = self._find(name, version)
        changes: dict[str, Any] = {"updated": self._clock()}
        if enabled is not None:
            changes["enabled"] = bool(enabled)
        if content_type is not None:
            changes["content_type"] = content_type
        if not_before is not None:
            changes["not_before"] = _seconds(not_before)
        if expires_on is not None:
            changes["expires_on"] = _seconds(expires_on)
        if tags is not None:
            changes["tags"] = dict(tags)
        updated = replace(found, **changes)
        self._versions.put(updated)
        return self._properties(updated)

    def begin_delete_secret(self, name: str, **kwargs: Any) -> _Done:
        """Delete every version at once (no soft delete: the name is free again)."""
        if not self._versions.delete(_check(name)):
            raise _error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found.")
        return _Done(LocalDeletedSecret(name, datetime.now(UTC)))

    # internals -----------------------------------------------------------------------------

    def _find(self, name: str, version: str | None) -> _Version:
        versions = self._versions.list(_check(name))
        if versions and not version:
            return versions[-1]
        for candidate in versions:
            if candidate.version == version:
                return candidate
        what = f"{name}/{version}" if version else name
        raise _error(404, "SecretNotFound", f"A secret with (name/id) {what} was not found.")

    def _now(self, name: str) -> float:
        """Now, but never at or before the newest version's creation: versions of one
        secret are strictly ordered even when created within one clock tick."""
        now = self._clock()
        versions = self._versions.list(name)
        if versions and now <= versions[-1].created:
            now = versions[-1].created + 1e-6
        return now

    def _properties(self, version: _Version) -> LocalSecretProperties:
        return LocalSecretProperties(
            name=version.name, version=version.version,
            created_on=datetime.fromtimestamp(version.created, UTC),
            updated_on=datetime.fromtimestamp(version.updated, UTC), enabled=version.enabled,
            not_before=_moment(version.not_before), expires_on=_moment(version.expires_on),
            content_type=version.content_type,
            tags=dict(version.tags) if version.tags else None, vault_url=self.vault_url)


def _check(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _error(400, "BadParameter", "The secret name is not valid.")
    return name


def _version_id(created: float) -> str:
    """32 hex digits like Key Vault's; the first 16 are the creation time, so ids sort in
    creation order."""
    return f"{int(created * 1_000_000):016x}{secrets.token_hex(8)}"


_MEMORY: weakref.WeakKeyDictionary[Any, LocalSecrets] = weakref.WeakKeyDictionary()
_MEMORY_LOCK = threading.Lock()


def local_secrets(store: Any, *, clock: Callable[[], float] = time.time) -> LocalSecrets:
    """The local secrets of ``store``: rows of its table for a Table Storage store, else
    versions kept in memory beside it (the same object for the same store, so the API and
    the admin operations over one memory store see the same tokens)."""
    if getattr(store, "table", None) is not None and hasattr(store, "session"):
        return LocalSecrets(_TableVersions(store), clock=clock)
    with _MEMORY_LOCK:
        found = _MEMORY.get(store)
        if found is None:
            found = LocalSecrets(clock=clock)
            _MEMORY[store] = found
        return found
