"""Table transactions through the SDK without its per-batch thread pools and email parsing,
once ``install_batch_codec()`` has run (docs/architecture.md, "The batch codec")."""

from __future__ import annotations

import inspect
import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from azure.core.pipeline import Pipeline, PipelineContext, PipelineRequest, PipelineResponse

TESTED_AZURE_CORE = "1.41"
"""The azure-core minor version the codec was written and tested against (requirements.txt
pins it)."""
_LOG = logging.getLogger(__name__)
_BODY_HELPER = "_prepare_multipart_body_helper"
_CRLF = b"\r\n"
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_NO_BODY = {204, 304}
_BODY_METHODS = frozenset({"PATCH", "POST", "PUT"})
_HEADER_NAME = re.compile(r"[^:\s][^:\r\n]*")
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_SERIALIZER_HEADERS = frozenset({"host", "accept-encoding", "transfer-encoding"})

_sdk_multipart_body: Callable[[Any, int], int] | None = None
"""azure-core's own body writer, for requests whose shape the lean one does not cover."""
_saved: list[tuple[Any, str, Any]] = []
"""What ``install_batch_codec`` replaced (owner, name, original), for uninstalling."""
_lock = threading.Lock()
_warned = False


def _prepare_parts(request: Any) -> None:
    info = request.multipart_mixed_info
    if not info:
        return
    parts, policies, options = info[0], info[1], info[3]
    for part in parts:
        _prepare_parts(part)
        pipeline_request = PipelineRequest(part, PipelineContext(None, **options))
        for policy in policies:
            policy.on_request(pipeline_request)


def request_bytes(request: Any) -> bytes:
    """``request`` as azure-core's ``_serialize_request`` writes it (http.client's request
    layout, without Host and Accept-Encoding), for the shapes Table operations have;
    azure-core's own serializer for anything else."""
    method, url, body = request.method, request.url or "/", request.body
    if isinstance(body, str) and body.isascii():
        body = body.encode("ascii")
    if (not (body is None or isinstance(body, bytes)) or not method.isascii()
            or not url.isascii() or _URL_UNSAFE.search(url) or _URL_UNSAFE.search(method)):
        return bytes(request.serialize())
    lines = [f"{method} {url} HTTP/1.1".encode("ascii")]
    names = set()
    for name, value in request.headers.items():
        if (not isinstance(value, str) or not name.isascii() or "\r" in value or "\n" in value
                or not _HEADER_NAME.fullmatch(name) or name.lower() in _SERIALIZER_HEADERS):
            return bytes(request.serialize())
        try:
            lines.append(name.encode("ascii") + b": " + value.encode("latin-1"))
        except UnicodeEncodeError:
            return bytes(request.serialize())
        names.add(name.lower())
    if "content-length" not in names and (body is not None or method.upper() in _BODY_METHODS):
        lines.insert(1, b"Content-Length: %d" % len(body or b""))
    return b"\r\n".join([*lines, b"", body or b""])


def multipart_body(request: Any, content_index: int = 0) -> int:
    """Set ``request``'s multipart/mixed body from its parts, as azure-core's
    ``_prepare_multipart_body_helper`` does (the email generator's layout, CRLF line ends);
    returns the next Content-ID."""
    info = request.multipart_mixed_info
    if not info:
        return 0
    boundary = info[2]
    if not boundary and _sdk_multipart_body is not None:
        return _sdk_multipart_body(request, content_index)
    chunks = []
    for part in info[0]:
        if part.multipart_mixed_info:
            content_index = multipart_body(part, content_index)
            head = b"Content-Type: " + part.headers["Content-Type"].encode("ascii") + _CRLF
            payload = request_bytes(part)
            payload = payload[payload.index(b"--"):]
        else:
            head = (b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                    b"Content-ID: " + str(content_index).encode("ascii") + _CRLF)
            payload = request_bytes(part)
            content_index += 1
        if not payload.count(b"\r") == payload.count(b"\n") == payload.count(_CRLF):
            payload = _NEWLINE.sub(_CRLF, payload)
        chunks.append(head + _CRLF + payload)
    delimiter = b"--" + boundary.encode("ascii")
    request.set_bytes_body(delimiter + _CRLF + (_CRLF + delimiter + _CRLF).join(chunks)
                           + _CRLF + delimiter + b"--" + _CRLF)
    request.headers["Content-Type"] = "multipart/mixed; boundary=" + boundary
    return content_index


class _PartAnswer:
    """One answer of a batch, in the shape azure-core reads from ``http.client``."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]],
                 body: bytes) -> None:
        self.status = status
        self.reason = reason
        self._headers = headers
        self._body = body

    def getheaders(self) -> list[tuple[str, str]]:
        """The answer's headers, as ``http.client`` lists them."""
        return self._headers

    def read(self, *_: Any) -> bytes:
        """The answer's body."""
        return self._body

    def close(self) -> None:
        """Nothing to release."""
        pass


def _headers(block: bytes) -> list[tuple[str, str]] | None:
    found = []
    for line in block.split(_CRLF):
        name, colon, value = line.partition(b":")
        if not colon or not name or line[:1] in (b" ", b"\t"):
            return None
        found.append((name.decode("latin-1"), value.lstrip(b" \t").decode("latin-1")))
    return found


def _answer(payload: bytes) -> _PartAnswer | None:
    head, blank, body = payload.partition(_CRLF + _CRLF)
    status_line, _, header_block = head.partition(_CRLF)
    version, _, rest = status_line.decode("latin-1").partition(" ")
    code, _, reason = rest.partition(" ")
    headers = _headers(header_block) if header_block else []
    if not blank or version != "HTTP/1.1" or not code.isdigit() or headers is None:
        return None
    fields = {name.lower(): value for name, value in headers}
    status = int(code)
    if "transfer-encoding" in fields or status < 200:
        return None
    if status in _NO_BODY:
        body = b""
    elif "content-length" in fields:
        length = fields["content-length"].strip()
        if not length.isdigit():
            return None
        body = body[:int(length)]
    return _PartAnswer(status, reason.strip(), headers, body)


def _parts(body: bytes, content_type: str, requests: Sequence[Any],
           build: Callable[[Any, _PartAnswer], Any]) -> list[Any] | None:
    """The answers in a multipart/mixed ``body``, or None when it is not laid out as Table
    Storage lays it out (then azure-core parses it)."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        return None
    delimiter = _CRLF + b"--" + match.group(1).encode("latin-1")
    segments = (_CRLF + body).split(delimiter)
    if len(segments) < 3 or not segments[-1].startswith(b"--"):
        return None
    answers: list[Any] = []
    for index, segment in enumerate(segments[1:-1]):
        padding, _, part = segment.partition(_CRLF)
        head, blank, payload = part.partition(_CRLF + _CRLF)
        headers = _headers(head) if head else []
        if padding.strip(b" \t") or not blank or headers is None:
            return None
        fields = {name.lower(): value for name, value in headers}
        kind = fields.get("content-type", "").split(";")[0].strip().lower()
        if index >= len(requests):
            return None
        request = requests[index]
        if kind == "application/http":
            answer = _answer(payload)
            if answer is None:
                return None
            answers.append(build(request, answer))
        elif kind == "multipart/mixed" and request.multipart_mixed_info:
            nested = _parts(payload, fields["content-type"], request.multipart_mixed_info[0],
                            build)
            if nested is None:
                return None
            answers.extend(nested)
        else:
            return None
    return answers


def read_parts(response: Any) -> list[Any]:
    """The answers in a batch response, as azure-core's ``_get_raw_parts`` returns them."""
    from azure.core.rest._http_response_impl import RestHttpClientTransportResponse

    info = response.request.multipart_mixed_info
    if info:
        parts = _parts(response.body(), response.content_type, info[0],
                       lambda request, answer: RestHttpClientTransportResponse(  # type: ignore[no-untyped-call]
                           request=request, internal_response=answer))
        if parts is not None:
            return parts
    return list(response._get_raw_parts())


def _response_parts(response: Any) -> Any:
    if not response.content_type or not response.content_type.startswith("multipart/mixed"):
        raise ValueError("You can't get parts if the response is not multipart/mixed")
    parts = read_parts(response) if _is_rest(response) else response._get_raw_parts()
    info = response.request.multipart_mixed_info
    if info:
        for part in parts:
            context = PipelineContext(None)
            pipeline_request = PipelineRequest(part.request, context)
            pipeline_response = PipelineResponse(part.request, part, context=context)
            for policy in info[1]:
                policy.on_response(pipeline_request, pipeline_response)
    return parts


def _is_rest(response: Any) -> bool:
    from azure.core.rest._http_response_impl import _HttpResponseBaseImpl

    return isinstance(response, _HttpResponseBaseImpl)


_Shape = tuple[tuple[str, Any, Any], ...]


def _replaced() -> list[tuple[Any, str, _Shape, Any]]:
    """Every azure-core helper the codec replaces: where it lives, its name, its parameters
    as written against (name, kind, default), and the replacement."""
    from azure.core.pipeline.transport import _base as transport_base
    from azure.core.rest import _helpers as rest_helpers
    from azure.core.rest import _http_response_impl as response_impl

    plain, empty = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty
    response = (("response", plain, empty),)
    return [
        (Pipeline, "_prepare_multipart_mixed_request", (("request", plain, empty),),
         staticmethod(_prepare_parts)),
        (transport_base, "_parts_helper", response, _response_parts),
        (response_impl, "_parts_helper", response, _response_parts),
        (rest_helpers, _BODY_HELPER,
         (("http_request", plain, empty), ("content_index", plain, 0)), multipart_body),
    ]


def _mismatch() -> str | None:
    """Why azure-core is not the one the codec was tested with, or None when it is."""
    import azure.core
    from azure.core.rest import _http_response_impl as response_impl

    version = str(getattr(azure.core, "__version__", ""))
    if version.split(".")[:2] != TESTED_AZURE_CORE.split("."):
        return f"azure-core {version or '(no version)'} is not {TESTED_AZURE_CORE}.x"
    if not callable(getattr(response_impl, "RestHttpClientTransportResponse", None)):
        return "azure.core.rest._http_response_impl.RestHttpClientTransportResponse is missing"
    for owner, name, expected, _ in _replaced():
        found = inspect.getattr_static(owner, name, None)
        if owner is Pipeline:
            if not isinstance(found, staticmethod):
                return f"Pipeline.{name} is not a static method"
            found = found.__func__
        if not callable(found):
            return f"{getattr(owner, '__name__', owner)}.{name} is missing"
        try:
            signature = inspect.signature(found)
        except (TypeError, ValueError):
            return f"{getattr(owner, '__name__', owner)}.{name} has no signature"
        if tuple((p.name, p.kind, p.default) for p in signature.parameters.values()) != expected:
            return f"{getattr(owner, '__name__', owner)}.{name}{signature} is not the one replaced"
    return None


def install_batch_codec() -> bool:
    """Replaces azure-core's batch helpers with this module's, process-wide, and returns
    True; when azure-core is not the version they were tested with or a helper's
    signature differs, changes nothing, logs a warning (once) and returns False."""
    global _sdk_multipart_body, _warned
    with _lock:
        if _saved:
            return True
        why = _mismatch()
        if why is not None:
            if not _warned:
                _warned = True
                _LOG.warning("Table batches use azure-core's own code (slower): %s.", why)
            return False
        replaced = _replaced()
        _sdk_multipart_body = getattr(replaced[-1][0], _BODY_HELPER)
        for owner, name, _, replacement in replaced:
            _saved.append((owner, name, inspect.getattr_static(owner, name)))
            setattr(owner, name, replacement)
        return True


def uninstall_batch_codec() -> None:
    """Puts azure-core's own helpers back (for tests and the benchmark)."""
    global _sdk_multipart_body
    with _lock:
        while _saved:
            owner, name, original = _saved.pop()
            setattr(owner, name, original)
        _sdk_multipart_body = None


def batch_codec_installed() -> bool:
    """Whether ``install_batch_codec`` has replaced azure-core's helpers."""
    return bool(_saved)

