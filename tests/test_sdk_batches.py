"""The store's replacements for azure-core's batch helpers do what azure-core's own do."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from azure.core import MatchConditions
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest import _helpers as rest_helpers
from azure.core.utils._pipeline_transport_rest_shared import _serialize_request
from azure.data.tables import TableClient, TableTransactionError, UpdateMode
from hypothesis import given, settings
from hypothesis import strategies as st

from scim_core.store.tables import TableStore, sdk_batches
from tests.azurite import TableHarness

pytest_plugins = ["tests.azurite"]
pytestmark = pytest.mark.timeout(300)

CONNECTION = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
              "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
              "KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;")


class _Stop(Exception):
    pass


class Refusing(HttpTransport):  # type: ignore[misc,type-arg]
    """A transport that sends nothing: the request has been built when it gets it."""

    def __enter__(self) -> Refusing:
        return self

    def __exit__(self, *_: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: Any, **kwargs: Any) -> Any:
        raise _Stop()


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    assert sdk_batches.run_batch_policies_inline()


def checking_bodies(compared: list[int]) -> Any:
    """The lean body writer, also running azure-core's on a copy and comparing the bytes."""
    def check(request: Any, content_index: int = 0) -> int:
        twin = copy.deepcopy(request)
        assert sdk_batches._sdk_multipart_body is not None
        expected_index = sdk_batches._sdk_multipart_body(twin, content_index)
        index = sdk_batches.multipart_body(request, content_index)
        assert request.content == twin.content
        assert request.headers["Content-Type"] == twin.headers["Content-Type"]
        assert index == expected_index
        compared.append(len(request.content))
        return index
    return check


text = st.text(max_size=40)
values = st.one_of(text, st.integers(-2**31, 2**31 - 1), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False), st.binary(max_size=20))
properties = st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,8}", fullmatch=True)
                             .filter(lambda n: n not in ("PartitionKey", "RowKey")),
                             values, max_size=6)
operation = st.tuples(
    st.sampled_from(["create", "upsert-merge", "upsert-replace", "update-merge",
                     "update-replace", "update-etag", "delete", "delete-etag"]),
    st.from_regex(r"[A-Za-z0-9:%'_ .-]{1,30}", fullmatch=True), properties)


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, min_size=1, max_size=100, unique_by=lambda op: op[1]))
def test_batch_bodies_are_byte_for_byte_azure_cores(
        operations: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Every shape of transaction gets the same body bytes, Content-Type and Content-IDs
    from the lean writer as from azure-core's email-based one."""
    client = TableClient.from_connection_string(CONNECTION, "checked", transport=Refusing(),
                                                retry_total=0)
    etag = 'W/"datetime\'2024-01-01T00%3A00%3A00.1234567Z\'"'
    batch: list[Any] = []
    for verb, row_key, props in operations:
        entity = {"PartitionKey": "p", "RowKey": row_key, **props}
        mode = UpdateMode.MERGE if verb.endswith("merge") else UpdateMode.REPLACE
        if verb == "create":
            batch.append(("create", entity))
        elif verb.startswith("upsert"):
            batch.append(("upsert", entity, {"mode": mode}))
        elif verb.startswith("update"):
            options: dict[str, Any] = {"mode": mode}
            if verb == "update-etag":
                options.update(etag=etag, match_condition=MatchConditions.IfNotModified)
            batch.append(("update", entity, options))
        else:
            options = ({"etag": etag, "match_condition": MatchConditions.IfNotModified}
                       if verb == "delete-etag" else {})
            batch.append(("delete", entity, options))
    compared: list[int] = []
    with mock.patch.object(rest_helpers, "_prepare_multipart_body_helper",
                           checking_bodies(compared)), pytest.raises(_Stop):
        client.submit_transaction(batch)
    assert compared, "the body writer was not called"


header_names = st.one_of(
    st.sampled_from(["Content-Type", "If-Match", "Accept", "Host", "accept-encoding",
                     "Content-Length", "Transfer-Encoding", "x-ms-date", "bad name", "é"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True))
header_values = st.one_of(st.text(st.characters(max_codepoint=0x17F), max_size=20),
                          st.sampled_from(['W/"datetime\'2024\'"', "a\r\n b", "x\ny"]))


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "MERGE"]),
       url=st.one_of(st.from_regex(r"http://h/t\(PartitionKey='[%'A-Za-z0-9:]*'\)",
                                   fullmatch=True), st.text(max_size=20)),
       headers=st.dictionaries(header_names, header_values, max_size=6),
       content=st.one_of(st.none(), st.binary(max_size=30), st.text(max_size=30)))
def test_parts_serialize_byte_for_byte_as_azure_cores(
        method: str, url: str, headers: dict[str, str], content: bytes | str | None) -> None:
    """Any request serializes to azure-core's bytes, or raises the error azure-core raises."""
    request = HttpRequest(method, url, headers=headers, content=content)
    try:
        expected: bytes | type[BaseException] = _serialize_request(request)
    except Exception as error:
        expected = type(error)
    if isinstance(expected, bytes):
        assert sdk_batches.request_bytes(request) == expected
    else:
        with pytest.raises(expected):
            sdk_batches.request_bytes(request)


def described(parts: list[Any]) -> list[tuple[Any, ...]]:
    return [(p.request, p.status_code, p.reason, list(p.headers.items()), p.read())
            for p in parts]


@pytest.fixture
def compared_answers() -> Iterator[list[int]]:
    """While in use, every batch answer is read by the lean reader (without falling back)
    and by azure-core's, which must agree on every part's request, status, reason, headers
    and body."""
    seen: list[int] = []
    lean = sdk_batches.read_parts
    lock = threading.Lock()

    def both(response: Any) -> list[Any]:
        requests = response.request.multipart_mixed_info[0]
        assert sdk_batches._parts(response.body(), response.content_type, requests,
                                  lambda request, answer: answer) is not None, "fell back"
        ours = lean(response)
        theirs = list(response._get_raw_parts())
        assert described(ours) == described(theirs)
        with lock:
            seen.append(len(ours))
        return ours

    with mock.patch.object(sdk_batches, "read_parts", both):
        yield seen


def test_batch_answers_read_the_same_as_azure_cores(table_harness: TableHarness,
                                                   compared_answers: list[int]) -> None:
    """Azurite's answers to successful, conflicting, missing-row and stale-etag
    transactions read the same part by part as azure-core reads them, and the lean reader
    handles each of them itself."""
    store: TableStore = table_harness.store
    store.existing("default", "User", ["warm-up"])
    client = table_harness.client
    rows = [{"PartitionKey": "p", "RowKey": f"r{n}", "n": n, "s": "é\r\n--x"} for n in range(30)]
    client.submit_transaction([("create", row) for row in rows])
    stale = 'W/"datetime\'2000-01-01T00%3A00%3A00.0000000Z\'"'
    failing: list[list[Any]] = [
        [("create", rows[0])],
        [("upsert", rows[1]), ("update", {"PartitionKey": "p", "RowKey": "missing"})],
        [("update", rows[2], {"mode": UpdateMode.REPLACE, "etag": stale,
                              "match_condition": MatchConditions.IfNotModified})],
        [("delete", {"PartitionKey": "p", "RowKey": "gone"})],
    ]
    for batch in failing:
        with pytest.raises(TableTransactionError):
            client.submit_transaction(batch)
    client.submit_transaction([("upsert", row, {"mode": UpdateMode.MERGE}) for row in rows[1:]]
                              + [("delete", {"PartitionKey": "p", "RowKey": "r0"})])
    assert compared_answers == [30, 1, 1, 1, 1, 30]


@pytest.mark.parametrize("body", [
    b"--b\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n\n\n--b--\n",
    b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n",
    (b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\r\n--b--\r\n"),
    (b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n"
     b"X-Folded: a\r\n b\r\n\r\n\r\n--b--\r\n"),
])
def test_answers_not_laid_out_as_table_storage_does_are_left_to_azure_core(
        body: bytes) -> None:
    """LF-only line ends, a missing closing delimiter, a part that is not HTTP, chunked
    encoding or folded headers make the lean reader step aside (azure-core parses them)."""
    request = mock.Mock(multipart_mixed_info=None)
    assert sdk_batches._parts(body, "multipart/mixed; boundary=b", [request],
                              lambda r, a: a) is None


def test_a_well_formed_answer_is_read_directly() -> None:
    """A two-part changeset answer is read part by part: status, reason, headers, body."""
    body = (b"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2"
            b"\r\n\r\n--changesetresponse_2\r\nContent-Type: application/http\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 204 No Content\r\n"
            b"ETag: W/\"1\"\r\nX-Spaced:   v \r\n\r\n\r\n--changesetresponse_2\r\n"
            b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n"
            b"{\"odata.error\":{}}\r\n--changesetresponse_2--\r\n--batchresponse_1--\r\n")
    first, second = mock.Mock(multipart_mixed_info=None), mock.Mock(multipart_mixed_info=None)
    changeset = mock.Mock(multipart_mixed_info=([first, second], [], "changeset", {}))
    parts = sdk_batches._parts(body, "multipart/mixed; boundary=batchresponse_1", [changeset],
                               lambda request, answer: (request, answer))
    assert parts is not None
    assert [(r, a.status, a.reason, a.getheaders(), a.read()) for r, a in parts] == [
        (first, 204, "No Content", [("ETag", 'W/"1"'), ("X-Spaced", "v ")], b""),
        (second, 404, "Not Found", [("Content-Type", "application/json")],
         b"{\"odata.error\":{}}"),
    ]
