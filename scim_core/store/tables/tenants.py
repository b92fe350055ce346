"""The tenant registry on Azure Table Storage: one row per tenant in its own partition."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, UpdateMode

from scim_core.tenants.model import Tenant
from scim_core.tenants.registry import TenantExists, TenantMissing, TenantMoved

REGISTRY_PARTITION = "$tenants"
"""Outside every tenant's partition: tenant ids never hold ``$``."""


def _tenant(entity: Any) -> Tenant:
    return Tenant(str(entity["RowKey"]), str(entity["name"]), str(entity["state"]),
                  str(entity["created"]), str(entity.get("changed", entity["created"])),
                  int(entity.get("epoch") or 0), str(entity.metadata["etag"]))


def _entity(tenant: Tenant) -> dict[str, Any]:
    return {"PartitionKey": REGISTRY_PARTITION, "RowKey": tenant.id, "name": tenant.name,
            "state": tenant.state, "created": tenant.created, "changed": tenant.changed,
            "epoch": tenant.epoch}


def _with_etag(tenant: Tenant, written: Any) -> Tenant:
    etag = written.get("etag") if isinstance(written, dict) else None
    return Tenant(tenant.id, tenant.name, tenant.state, tenant.created, tenant.changed,
                  tenant.epoch, None if etag is None else str(etag))


class Rows(Protocol):
    """What the registry uses of its ``TableStore``: the table, a session around each call
    (storage failures become store errors) and point reads."""

    table: TableClient

    def session(self) -> AbstractContextManager[None]:
        """One store call."""
        ...

    def read(self, partition: str, row_key: str,
             select: list[str] | None = None) -> TableEntity | None:
        """A point read; None when the entity is not there."""
        ...


class TableTenantRegistry:
    """Registered tenants as rows of the store's table."""

    def __init__(self, store: Rows) -> None:
        self._store = store

    def get(self, tenant_id: str) -> Tenant | None:
        """The registered tenant, or None (one point read)."""
        with self._store.session():
            found = self._store.read(REGISTRY_PARTITION, tenant_id)
        return None if found is None else _tenant(found)

    def create(self, tenant: Tenant) -> Tenant:
        """Register a new tenant."""
        with self._store.session():
            try:
                written = self._store.table.create_entity(_entity(tenant))
            except ResourceExistsError:
                raise TenantExists(tenant.id) from None
        return _with_etag(tenant, written)

    def update(self, tenant: Tenant) -> Tenant:
        """Replace a registered tenant: If-Match its etag when it has one, else If-Match: *
        (only an existing row)."""
        condition: dict[str, Any] = ({} if tenant.etag is None else
                                     {"etag": tenant.etag,
                                      "match_condition": MatchConditions.IfNotModified})
        with self._store.session():
            try:
                written = self._store.table.update_entity(_entity(tenant),
                                                          mode=UpdateMode.REPLACE, **condition)
            except ResourceNotFoundError:
                raise TenantMissing(tenant.id) from None
            except ResourceModifiedError:
                raise TenantMoved(tenant.id) from None
        return _with_etag(tenant, written)

    def delete(self, tenant_id: str) -> None:
        """Forget a tenant."""
        with self._store.session(), contextlib.suppress(ResourceNotFoundError):
            self._store.table.delete_entity(REGISTRY_PARTITION, tenant_id)

    def list(self) -> Iterator[Tenant]:
        """Every registered tenant, by id."""
        with self._store.session():
            rows = self._store.table.query_entities(
                "PartitionKey eq @p", parameters={"p": REGISTRY_PARTITION})
            for entity in rows:
                yield _tenant(entity)
