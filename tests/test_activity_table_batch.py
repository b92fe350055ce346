"""The activity writer's own ``$batch`` encoding (scim_core/activity/table_batch.py): what it
writes on Azurite reads back as the SDK wrote it, a refused batch writes nothing, and a
value it does not cover goes through the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from azure.data.tables import TableClient
from azure.data.tables._serialize import _add_entity_properties

from scim_core.activity import tables
from scim_core.activity.rows import ActivityStoreError
from scim_core.activity.table_batch import Unencodable, entity_json, failed_status
from scim_core.activity.tables import TableActivityRows, _lean_route
from tests.azurite import FAST_CLIENT_OPTIONS, Azurite, RequestLog, unique_table_name

PARTITION = "ten'ant|e20261208"
ROWS: list[dict[str, Any]] = [
    {"PartitionKey": PARTITION, "RowKey": "e|8234567890123|abc'def", "time":
     "2026-12-08T01:02:03.004Z", "status": 201, "duration_ms": 3.0, "flag": True,
     "user_name": "Zoë O'Brien +tag@contoso.com", "detail": "quote \" backslash \\ tab \t"},
    {"PartitionKey": PARTITION, "RowKey": "n|vzo%C3%AB|8234567890123|abc'def", "status": -7,
     "duration_ms": 0.125, "body": "x" * 8_000, "flag": False},
    {"PartitionKey": PARTITION, "RowKey": "n|v100%25 & more|1|2", "status": 2**31 - 1,
     "duration_ms": 1e-3},
]


@pytest.fixture
def table(azurite: Azurite) -> Iterator[tuple[TableClient, RequestLog]]:
    """A fresh activity table on Azurite, its requests logged."""
    calls = RequestLog()
    client = TableClient.from_connection_string(
        azurite.connection_string, table_name=unique_table_name() + "activity",
        raw_response_hook=calls, **FAST_CLIENT_OPTIONS)
    try:
        yield client, calls
    finally:
        client.delete_table()
        client.close()


def _stored(client: TableClient) -> dict[str, dict[str, Any]]:
    return {e["RowKey"]: {k: (v, type(v)) for k, v in e.items()}
            for e in client.query_entities("PartitionKey eq @p", parameters={"p": PARTITION})}


def test_the_lean_encoding_is_the_sdks_json_less_its_string_annotations() -> None:
    """Each row encodes to the SDK's entity JSON, without the optional Edm.String tags."""
    for row in ROWS:
        sdk = {k: v for k, v in _add_entity_properties(row).items()
               if not (k.endswith("@odata.type") and v == "Edm.String")}
        assert json.loads(entity_json(row)) == sdk


@pytest.mark.parametrize("value", [datetime(2026, 12, 8, tzinfo=UTC), 2**31, -(2**31) - 1,
                                   float("nan"), float("inf"), b"raw", ("1", "Edm.Int64")])
def test_a_value_the_lean_encoding_does_not_cover_is_refused(value: object) -> None:
    """Dates, ints past 32 bits, NaN/infinity, bytes and typed tuples are left to the SDK."""
    with pytest.raises(Unencodable):
        entity_json({"PartitionKey": "p", "RowKey": "r", "v": value})


def test_rows_written_in_one_request_read_back_as_the_sdk_writes_them(
        table: tuple[TableClient, RequestLog]) -> None:
    """One $batch request; keys with quotes, % and spaces, and every value and type, kept."""
    client, calls = table
    rows = TableActivityRows(client)
    rows.submit(PARTITION, ROWS[:1])  # creates the table
    calls.clear()
    rows.submit(PARTITION, ROWS)
    assert calls.entries == [("POST", "$batch")]
    mine = _stored(client)
    client.delete_table()
    client.create_table()
    client.submit_transaction([("upsert", dict(r), {"mode": "replace"}) for r in ROWS])
    assert _stored(client) == mine
    assert set(mine) == {r["RowKey"] for r in ROWS}


def test_an_upsert_replaces_the_whole_row(table: tuple[TableClient, RequestLog]) -> None:
    """Writing a row again keeps only the new row's properties (REPLACE, not MERGE)."""
    client, _ = table
    rows = TableActivityRows(client)
    rows.submit(PARTITION, ROWS[:1])
    rows.submit(PARTITION, [{"PartitionKey": PARTITION, "RowKey": ROWS[0]["RowKey"],
                             "status": 500}])
    (entity,) = client.query_entities("PartitionKey eq @p", parameters={"p": PARTITION})
    assert {k: v for k, v in entity.items()} == {
        "PartitionKey": PARTITION, "RowKey": ROWS[0]["RowKey"], "status": 500}


@pytest.mark.parametrize("bad", [
    {"PartitionKey": PARTITION, "RowKey": "n|a/b"},
    {"PartitionKey": PARTITION, "RowKey": "e|8234567890123|abc'def"},
    {"PartitionKey": PARTITION, "RowKey": "big", "body": "y" * 40_000},
])
def test_a_refused_row_fails_the_batch_and_writes_none_of_it(
        table: tuple[TableClient, RequestLog], bad: dict[str, Any]) -> None:
    """A forbidden key, a repeated key or an oversized property: ActivityStoreError, no row."""
    client, _ = table
    rows = TableActivityRows(client)
    client.create_table()
    with pytest.raises(ActivityStoreError, match=r"HTTP 400"):
        rows.submit(PARTITION, [*ROWS, bad])
    assert _stored(client) == {}


def test_a_value_past_the_lean_encoding_is_written_by_the_sdk(
        table: tuple[TableClient, RequestLog]) -> None:
    """A datetime property still reaches the row, as a datetime."""
    client, _ = table
    at = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)
    TableActivityRows(client).submit(PARTITION, [{**ROWS[0], "at": at}])
    (entity,) = client.query_entities("PartitionKey eq @p", parameters={"p": PARTITION})
    assert entity["at"] == at and entity["status"] == 201


def test_the_failed_status_is_the_answers_or_its_first_failed_parts() -> None:
    """202 with 2xx parts: None; a 4xx part: its status; not 202: that status."""
    ok = b"--b\r\nHTTP/1.1 204 No Content\r\n\r\n--b\r\nHTTP/1.1 201 Created\r\n\r\n--b--"
    assert failed_status(202, ok) is None
    assert failed_status(202, ok.replace(b"201 Created", b"409 Conflict")) == 409
    assert failed_status(404, b"") == 404


def test_the_lean_route_is_found_only_where_the_sdk_has_its_parts(
        table: tuple[TableClient, RequestLog]) -> None:
    """A TableClient of this SDK gives its account URL and pipeline; an object without
    ``_primary_hostname`` or ``_client.send_request`` (a renamed SDK internal) gives none."""
    client, _ = table
    route = _lean_route(client)
    assert route is not None and route[0] == f"{client.scheme}://{client._primary_hostname}"
    assert _lean_route(cast(TableClient, SimpleNamespace(
        scheme="http", _primary_hostname="h", _client=SimpleNamespace()))) is None
    assert _lean_route(cast(TableClient, SimpleNamespace(
        scheme="http", _client=client._client))) is None


def test_without_the_lean_route_a_batch_goes_through_the_sdk(
        table: tuple[TableClient, RequestLog], monkeypatch: pytest.MonkeyPatch) -> None:
    """With no lean route the batch goes through submit_transaction, in one request still,
    and its rows read back as the lean path's do."""
    client, calls = table
    TableActivityRows(client).submit(PARTITION, ROWS)
    lean = _stored(client)
    client.delete_table()
    monkeypatch.setattr(tables, "_lean_route", lambda _client: None)
    calls.clear()
    TableActivityRows(client).submit(PARTITION, ROWS)
    assert [method for method, _ in calls.entries].count("POST") == 2  # the table, a $batch
    assert _stored(client) == lean
