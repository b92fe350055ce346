"""A batch of activity upserts as one Table Storage ``$batch`` request, encoded in one pass
(the SDK builds, deep-copies and runs policies on one request object per row)."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from email.utils import formatdate
from typing import Any

__all__ = ["Unencodable", "batch_body", "entity_json", "failed_status"]

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_UNSAFE = re.compile(r"[^A-Za-z0-9_.~-]+")
_PART_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)


class Unencodable(ValueError):
    """A row holds a value the lean encoder leaves to the SDK (a date, a large int...)."""


def entity_json(row: Mapping[str, Any]) -> bytes:
    """``row`` as the SDK's JSON entity: strings, booleans and 32-bit ints as they are,
    floats annotated ``Edm.Double``; ``etag`` and None values left out."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or name == "etag":
            continue
        kind = type(value)
        if kind in (str, bool) or (kind is int and _INT32_MIN <= value <= _INT32_MAX):
            out[name] = value
        elif kind is float and math.isfinite(value):
            out[name] = value
            out[name + "@odata.type"] = "Edm.Double"
        else:
            raise Unencodable(f"property {name!r} is a {kind.__name__}")
    return json.dumps(out).encode("ascii")


def _quote(text: str) -> str:
    """``urllib.parse.quote(text, safe="")``, in one regex pass over the unsafe runs."""
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


def _key(value: str) -> str:
    return _quote(value.replace("'", "''"))


def batch_body(base: str, table: str, version: str, rows: Sequence[Mapping[str, Any]]
               ) -> tuple[str, bytes]:
    """The Content-Type and body of one ``$batch`` of REPLACE upserts of ``rows`` (one
    changeset) into ``table`` at ``base`` (``https://account.table.core.windows.net``),
    laid out as the SDK lays out ``submit_transaction``."""
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}".encode("ascii")
    date = formatdate(usegmt=True)
    head = (f"Content-Type: application/json\r\nContent-Length: %d\r\n"
            f"x-ms-version: {version}\r\nDataServiceVersion: 3.0\r\nAccept: application/json\r\n"
            f"x-ms-date: {date}\r\nDate: {date}\r\n\r\n").encode("ascii")
    prefix = f"PUT {base}/{_quote(table)}(PartitionKey='"
    chunks = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary=".encode("ascii")
              + changeset + b"\r\n\r\n"]
    partitions: dict[str, str] = {}  # a batch is one partition: quote its key once
    for index, row in enumerate(rows):
        entity = entity_json(row)
        partition = partitions.get(row["PartitionKey"]) or partitions.setdefault(
            row["PartitionKey"], _key(row["PartitionKey"]))
        url = f"{prefix}{partition}',RowKey='{_key(row['RowKey'])}') HTTP/1.1\r\n"
        chunks.append(b"--" + changeset + b"\r\nContent-Type: application/http\r\n"
                      b"Content-Transfer-Encoding: binary\r\nContent-ID: %d\r\n\r\n" % index
                      + url.encode("ascii") + head % len(entity) + entity + b"\r\n")
    chunks.append(b"--" + changeset + b"--\r\n\r\n" + f"--{batch}--\r\n".encode("ascii"))
    return f"multipart/mixed; boundary={batch}", b"".join(chunks)


def failed_status(status: int, body: bytes) -> int | None:
    """The HTTP status that failed a ``$batch`` answered ``status`` with ``body``: its own
    when not 202, else the first part's that is not 2xx; None when every part succeeded."""
    if status != 202:
        return status
    for match in _PART_STATUS.finditer(body):
        code = int(match.group(1))
        if not 200 <= code < 300:
            return code
    return None
