"""Local secrets on Table Storage: each token version a row of the store's own table in
partition ``$secrets``, holding a salted hash and never the token."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from scim_core.auth.local_secrets import LocalSecrets, StoredVersion, hash_token
from scim_core.auth.secrets import SecretStoreError
from scim_core.store.errors import StoreError
from scim_core.store.tables.store import TableStore

log = logging.getLogger(__name__)

SECRETS_PARTITION = "$secrets"
"""Outside every tenant's partition and the registry's: tenant ids never hold ``$``."""



class TableVersionRows:
    """``VersionRows`` as rows of a ``TableStore``'s table: RowKey ``<name>:<version>``.

    Rows written before tokens were hashed hold the token in ``value``: the first read
    replaces each such row by its hashed form (conditionally, so a concurrent reader's
    rewrite wins harmlessly) and the token keeps working.
    """

    def __init__(self, store: TableStore) -> None:
        self._store = store

    @property
    def location(self) -> str:
        """The table's endpoint and name (no account key)."""
        return f"the local secrets of table {self._store.table.table_name} at " \
               f"{self._store.table.url}"

    def list(self, name: str) -> list[StoredVersion]:
        """The versions of ``name``, oldest first; plain-text rows are hashed on the way."""
        low = name.lower()
        with self._session():
            rows = list(self._store.table.query_entities(
                "PartitionKey eq @p and RowKey gt @lo and RowKey lt @hi",
                parameters={"p": SECRETS_PARTITION, "lo": low + ":", "hi": low + ";"}))
            found = [self._hashed(row) for row in rows]
        return sorted(found, key=lambda v: (v.created, v.version))

    def put(self, version: StoredVersion) -> None:
        """Store or replace one version."""
        with self._session():
            self._store.table.upsert_entity(_entity(version), mode=UpdateMode.REPLACE)

    def delete(self, name: str) -> int:
        """Remove every version of ``name``."""
        found = self.list(name)
        with self._session():
            for version in found:
                with contextlib.suppress(ResourceNotFoundError):
                    self._store.table.delete_entity(SECRETS_PARTITION, _row_key(version))
        return len(found)

    def _hashed(self, row: Any) -> StoredVersion:
        if row.get("hash") or row.get("value") is None:
            return _version(row, str(row.get("hash") or ""))
        version = _version(row, hash_token(str(row["value"])))
        try:
            self._store.table.update_entity(
                _entity(version), mode=UpdateMode.REPLACE, etag=row.metadata["etag"],
                match_condition=MatchConditions.IfNotModified)
            log.info("Replaced the plain-text token of local secret %r version %s by its "
                     "salted hash.", version.name, version.version)
        except (ResourceModifiedError, ResourceNotFoundError):
            pass  # rewritten or deleted meanwhile: this hash still verifies the same token
        return version

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        try:
            with self._store.session():
                yield
        except StoreError as exc:
            raise SecretStoreError(
                f"Table Storage failed ({exc}) reading or writing {self.location}") from exc


def _row_key(version: StoredVersion) -> str:
    return f"{version.name.lower()}:{version.version}"


def _entity(version: StoredVersion) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": SECRETS_PARTITION, "RowKey": _row_key(version), "name": version.name,
        "version": version.version, "hash": version.token_hash, "created": version.created,
        "updated": version.updated, "enabled": version.enabled}
    if version.not_before is not None:
        entity["not_before"] = version.not_before
    if version.expires_on is not None:
        entity["expires_on"] = version.expires_on
    return entity


def _version(row: Any, token_hash: str) -> StoredVersion:
    def number(key: str) -> float | None:
        value = row.get(key)
        return None if value is None else float(value)

    return StoredVersion(
        name=str(row["name"]), version=str(row["version"]), token_hash=token_hash,
        created=float(row["created"]), updated=float(row["updated"]),
        enabled=bool(row["enabled"]), not_before=number("not_before"),
        expires_on=number("expires_on"))


def table_secrets(store: TableStore) -> LocalSecrets:
    """The local secrets of ``store``: rows of its own table."""
    return LocalSecrets(TableVersionRows(store))
