"""Activity rows on Table Storage: a table of their own, ``<SCIM_TABLE_NAME>activity``,
beside the data table, so writing them never takes from a tenant's data partition."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from scim_core.activity.rows import ActivityStoreError, Row
from scim_core.activity.table_batch import Unencodable, batch_body, failed_status
from scim_core.config import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = ["TableActivityRows", "activity_table_name", "table_activity_rows"]

ACTIVITY_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 1, "retry_connect": 1, "retry_read": 0, "retry_status": 1,
    "retry_backoff_factor": 0.5, "retry_backoff_max": 2,
    "connection_timeout": 3, "read_timeout": 10,
}
"""The writer thread may wait, but a batch is worth little against storage in trouble: one
retry, then the batch is dropped (and counted)."""


_BATCH_HEADERS = {"DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
                  "Accept": "application/json"}


def _lean_route(client: TableClient) -> tuple[str, Callable[..., Any]] | None:
    """The account URL and the pipeline's ``send_request`` of ``client`` (private parts of
    azure-data-tables 12.7), or None when this version of the SDK lacks them."""
    host = getattr(client, "_primary_hostname", None)
    send = getattr(getattr(client, "_client", None), "send_request", None)
    if not isinstance(host, str) or not callable(send):
        return None
    return f"{client.scheme}://{host}", send


def activity_table_name(table_name: str) -> str:
    """``<table_name>activity`` (cut to Table Storage's 63 characters)."""
    return table_name[:63 - len("activity")] + "activity"


def _failure(exc: BaseException) -> ActivityStoreError:
    status = getattr(exc, "status_code", None)
    return ActivityStoreError(f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}")


def _entity(row: Row) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "etag"}


def _row(entity: Any) -> Row:
    row = dict(entity)
    row["etag"] = entity.metadata["etag"]
    return row


class TableActivityRows:
    """``ActivityRows`` on one ``TableClient``; the table is created on first write."""

    def __init__(self, client: TableClient) -> None:
        self.client = client
        self._ready = False
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self.client.create_table()
                self._ready = True

    def submit(self, partition: str, rows: Sequence[Row]) -> None:
        """One batch of upserts, encoded by ``table_batch`` and sent through the client's
        own pipeline; through the SDK's ``submit_transaction`` for a value the encoder does
        not cover, or when the client no longer has the two private parts used for that
        (``_lean_route``: a later azure-data-tables may rename them)."""
        try:
            self._ensure()
            route = _lean_route(self.client)
            try:
                if route is None:
                    raise Unencodable("the client offers no route for a pre-encoded batch")
                base, send = route
                content_type, body = batch_body(base, self.client.table_name,
                                                self.client.api_version, rows)
            except Unencodable:
                self.client.submit_transaction(
                    [("upsert", _entity(r), {"mode": UpdateMode.REPLACE}) for r in rows])
                return
            request = HttpRequest("POST", f"{base}/$batch",
                                  headers={**_BATCH_HEADERS, "Content-Type": content_type,
                                           "x-ms-version": self.client.api_version},
                                  content=body)
            response = send(request, stream=True)
            try:
                failed = failed_status(response.status_code, response.read())
            finally:
                response.close()
        except (AzureError, TableTransactionError) as exc:
            raise _failure(exc) from exc
        if failed is not None:
            raise ActivityStoreError(f"TableTransactionError (HTTP {failed})")

    def range(self, partition: str, low: str, high: str, *, limit: int) -> list[Row]:
        """One query, paged until ``limit`` rows."""
        try:
            pages = self.client.query_entities(
                "PartitionKey eq @p and RowKey gt @lo and RowKey lt @hi",
                parameters={"p": partition, "lo": low, "hi": high},
                results_per_page=min(limit, 1000))
            found: list[Row] = []
            for entity in pages:
                found.append(_row(entity))
                if len(found) >= limit:
                    break
            return found
        except ResourceNotFoundError:
            return []  # no table yet: nothing was recorded
        except AzureError as exc:
            raise _failure(exc) from exc

    def partitions(self, low: str, high: str, *, limit: int) -> list[tuple[str, str]]:
        """Keys only, over a partition-key range."""
        try:
            found: list[tuple[str, str]] = []
            for entity in self.client.query_entities(
                    "PartitionKey gt @lo and PartitionKey lt @hi",
                    parameters={"lo": low, "hi": high}, select=["PartitionKey", "RowKey"],
                    results_per_page=min(limit, 1000)):
                found.append((entity["PartitionKey"], entity["RowKey"]))
                if len(found) >= limit:
                    break
            return found
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise _failure(exc) from exc

    def put(self, row: Row, *, etag: str | None) -> bool:
        """Conditional replace (``etag``) or insert."""
        try:
            self._ensure()
            if etag is None:
                self.client.create_entity(_entity(row))
            else:
                self.client.update_entity(_entity(row), mode=UpdateMode.REPLACE, etag=etag,
                                          match_condition=MatchConditions.IfNotModified)
            return True
        except (ResourceExistsError, ResourceModifiedError):
            return False
        except AzureError as exc:
            raise _failure(exc) from exc

    def put_all(self, partition: str, rows: Sequence[Row]) -> bool:
        """One batch of conditional replaces and inserts."""
        operations: list[Any] = []
        for row in rows:
            etag = row.get("etag")
            if etag is None:
                operations.append(("create", _entity(row)))
            else:
                operations.append(("update", _entity(row), {
                    "mode": UpdateMode.REPLACE, "etag": etag,
                    "match_condition": MatchConditions.IfNotModified}))
        try:
            self._ensure()
            self.client.submit_transaction(operations)
            return True
        except TableTransactionError as exc:
            if exc.status_code in (409, 412):
                return False
            raise _failure(exc) from exc
        except AzureError as exc:
            raise _failure(exc) from exc

    def delete(self, partition: str, row_keys: Sequence[str]) -> None:
        """One batch of deletes."""
        if not row_keys:
            return
        try:
            self.client.submit_transaction(
                [("delete", {"PartitionKey": partition, "RowKey": key}) for key in row_keys])
        except TableTransactionError:
            for key in row_keys:  # one was gone already: delete the rest one by one
                try:
                    self.client.delete_entity(partition, key)
                except AzureError as exc:
                    raise _failure(exc) from exc
        except AzureError as exc:
            raise _failure(exc) from exc


def table_activity_rows(settings: Settings, *, credential: TokenCredential | None,
                        **client_kwargs: Any) -> TableActivityRows:
    """The activity rows of the deployment ``settings`` name, on their own client."""
    from scim_core.store.tables.client import table_client

    named = dataclasses.replace(settings, table_name=activity_table_name(settings.table_name))
    options = {**ACTIVITY_CLIENT_OPTIONS, **client_kwargs}
    return TableActivityRows(table_client(named, credential=credential, **options))
