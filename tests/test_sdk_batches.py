"""The batch codec does what azure-core's own helpers do, and installs only when asked, on the
azure-core it was tested with."""

from __future__ import annotations

import copy
import inspect
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import azure.core
import pytest
from azure.core import MatchConditions
from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import HttpTransport
from azure.core.pipeline.transport import _base as transport_base
from azure.core.rest import HttpRequest
from azure.core.rest import _helpers as rest_helpers
from azure.core.rest import _http_response_impl as response_impl
from azure.core.utils._pipeline_transport_rest_shared import _serialize_request
from azure.data.tables import TableClient, TableTransactionError, UpdateMode
from hypothesis import given, settings
from hypothesis import strategies as st

from scim_core.store.tables import sdk_batches
from tests.azurite import FAST_CLIENT_OPTIONS, Azurite, unique_table_name

pytest_plugins = ["tests.azurite"]
pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parent.parent

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


@pytest.fixture(scope="module")
def codec() -> Iterator[None]:
    """The codec installed for the module's tests, as the app's builder installs it; the
    state found is put back afterwards."""
    was_installed = sdk_batches.batch_codec_installed()
    assert sdk_batches.install_batch_codec()
    yield
    if not was_installed:
        sdk_batches.uninstall_batch_codec()


@pytest.fixture
def pristine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """azure-core's own helpers in place and no warning given yet; the codec's state
    found is put back afterwards."""
    was_installed = sdk_batches.batch_codec_installed()
    sdk_batches.uninstall_batch_codec()
    monkeypatch.setattr(sdk_batches, "_warned", False)
    yield
    sdk_batches.uninstall_batch_codec()
    monkeypatch.undo()  # the stand-ins a test set go before the codec goes back in
    if was_installed:
        assert sdk_batches.install_batch_codec()


def helpers() -> dict[str, Any]:
    """What azure-core's four replaceable helpers are right now."""
    return {f"{getattr(owner, '__name__', owner)}.{name}": inspect.getattr_static(owner, name)
            for owner, name, _, _ in sdk_batches._replaced()}


def ours(value: Any) -> bool:
    function = value.__func__ if isinstance(value, staticmethod) else value
    return bool(function.__module__ == sdk_batches.__name__)


def test_importing_and_constructing_installs_nothing() -> None:
    """Importing the app, the store and the codec and constructing a TableStore leave
    azure-core's helpers as they are (checked in a fresh interpreter)."""
    script = textwrap.dedent(f"""
        import inspect
        import function_app, scim_core, scim_core.app
        from azure.data.tables import TableClient
        from scim_core.store.tables import TableStore, sdk_batches
        TableStore(TableClient.from_connection_string({CONNECTION!r}, "t"))
        replaced = [inspect.getattr_static(o, n) for o, n, _, _ in sdk_batches._replaced()]
        modules = {{getattr(f, "__func__", f).__module__ for f in replaced}}
        assert not sdk_batches.batch_codec_installed(), "installed"
        assert all(m.startswith("azure.core.") for m in modules), modules
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_install_replaces_every_helper_once_and_uninstall_puts_them_back(
        pristine: None) -> None:
    """On the azure-core it was tested with, install replaces all four helpers (again:
    no change), and uninstall restores azure-core's own."""
    original = helpers()
    assert not any(ours(v) for v in original.values())
    assert sdk_batches.install_batch_codec()
    installed = helpers()
    assert all(ours(v) for v in installed.values()) and sdk_batches.batch_codec_installed()
    assert sdk_batches.install_batch_codec()
    assert helpers() == installed
    sdk_batches.uninstall_batch_codec()
    assert helpers() == original and not sdk_batches.batch_codec_installed()


def _stand_in(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the stand-in helper was called")


def _other_name(request: Any, index: int = 0) -> None:
    _stand_in(request, index)


def _keyword_only(*, response: Any) -> None:
    _stand_in(response)


def _other_default(http_request: Any, content_index: int = 1) -> None:
    _stand_in(http_request, content_index)


def _extra_parameter(request: Any, options: Any) -> None:
    _stand_in(request, options)


@pytest.mark.parametrize(("where", "stand_in"), [
    ("Pipeline", staticmethod(_extra_parameter)),
    ("Pipeline", _other_name),
    ("transport", _keyword_only),
    ("response", _other_name),
    ("rest", _other_default),
    ("rest", _other_name),
])
def test_a_helper_with_another_signature_installs_nothing(
        pristine: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        where: str, stand_in: Any) -> None:
    """A replaceable helper whose parameters (names, kinds, defaults) or staticmethod-ness
    differ makes install change nothing, return False and log one warning."""
    owner, name = {"Pipeline": (Pipeline, "_prepare_multipart_mixed_request"),
                   "transport": (transport_base, "_parts_helper"),
                   "response": (response_impl, "_parts_helper"),
                   "rest": (rest_helpers, "_prepare_multipart_body_helper")}[where]
    monkeypatch.setattr(owner, name, stand_in)
    before = helpers()
    with caplog.at_level(logging.WARNING, logger=sdk_batches.__name__):
        assert not sdk_batches.install_batch_codec()
        assert not sdk_batches.install_batch_codec()
    assert helpers() == before and not sdk_batches.batch_codec_installed()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert name in caplog.records[0].getMessage()


@pytest.mark.parametrize("version", ["1.42.0", "1.40.9", "2.41.0", "1.4", ""])
def test_another_azure_core_minor_installs_nothing(
        pristine: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        version: str) -> None:
    """An azure-core of another minor version than the tested one (or with no version)
    makes install change nothing, return False and log a warning naming the version."""
    monkeypatch.setattr(azure.core, "__version__", version)
    before = helpers()
    with caplog.at_level(logging.WARNING, logger=sdk_batches.__name__):
        assert not sdk_batches.install_batch_codec()
    assert helpers() == before and not sdk_batches.batch_codec_installed()
    assert sdk_batches.TESTED_AZURE_CORE in caplog.records[0].getMessage()


def test_a_patch_release_of_the_tested_minor_installs(
        pristine: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A patch release of the tested minor (same helper signatures) installs."""
    monkeypatch.setattr(azure.core, "__version__", sdk_batches.TESTED_AZURE_CORE + ".99")
    assert sdk_batches.install_batch_codec()


def test_requirements_pin_azure_core_to_the_tested_minor() -> None:
    """requirements.txt pins azure-core to the minor the codec was tested with, and that is
    the one installed."""
    major, minor = (int(n) for n in sdk_batches.TESTED_AZURE_CORE.split("."))
    pins = [line.split("#")[0].strip() for line in
            (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip().startswith("azure-core")]
    assert pins == [f"azure-core>={major}.{minor},<{major}.{minor + 1}"]
    assert azure.core.__version__.split(".")[:2] == [str(major), str(minor)]


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


@pytest.mark.usefixtures("codec")
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


@pytest.mark.usefixtures("codec")
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


@pytest.fixture
def client(azurite: Azurite) -> Iterator[TableClient]:
    """A client of a fresh table on the session's Azurite (127.0.0.1), deleted afterwards."""
    with TableClient.from_connection_string(azurite.connection_string, unique_table_name(),
                                            **FAST_CLIENT_OPTIONS) as table:
        table.create_table()
        yield table
        table.delete_table()


@pytest.mark.usefixtures("codec")
def test_batch_answers_read_the_same_as_azure_cores(client: TableClient,
                                                   compared_answers: list[int]) -> None:
    """Azurite's answers to successful, conflicting, missing-row and stale-etag
    transactions read the same part by part as azure-core reads them, and the lean reader
    handles each of them itself."""
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
