"""The dev host with its storage traffic counted, in every worker process.

``python bench/counted_host.py DIR [dev host arguments]`` runs ``devhost`` after wrapping,
at class level and before the workers fork: ``ScimApi.handle`` (is this SCIM request a
read or a write?), azure-core's ``RequestsTransport.send`` (every storage request, put on
the SCIM request whose thread sent it), ``TableClient.submit_transaction`` (transactions and
their failures) and, where the revision has a change feed, ``FeedWrite.moved`` (a
transaction resubmitted because another writer moved the feed row) and
``FeedWrite.committed`` (how many races a transaction lost before it landed). Each process keeps its
counters in a file of its own in DIR (``DIR/<pid>``, int64s in ``FIELDS`` order, shared
memory), which ``read_counts`` adds up while the host runs.

It imports only the standard library until it starts, and is run by path, so that it can
serve any checkout's tree (``PYTHONPATH=<tree>``).
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote

FIELDS = (
    "scim_reads",
    "scim_writes",
    "storage_reads",  # storage requests sent while a SCIM GET was handled
    "storage_writes",  # ... while a SCIM POST, PUT, PATCH or DELETE was handled
    "storage_other",  # ... on another thread (the store's read pool), outside a request, or
    # of the tenant registry and token versions (their caches expiring)
    "storage_resent",  # the SDK's transport retries of a request already counted
    "bytes_out",  # request bodies sent to storage
    "transactions",
    "transactions_failed",
    "transactions_412",
    "feed_reads",  # point reads of a tenant's feed row
    "feed_reads_writing",  # ... of them while a SCIM write was handled (the rest: a read
    # that found nothing confirming the tenant is still there)
    "feed_moved",  # transactions resubmitted because the feed row had moved
    "feed_commits",  # transactions that appended events, by how many races they lost first:
    "feed_lost_0",
    "feed_lost_1",
    "feed_lost_2_3",
    "feed_lost_4_plus",  # past the first 3, FeedWrite pauses before each retry
)
_LOST = ((0, "feed_lost_0"), (1, "feed_lost_1"), (3, "feed_lost_2_3"))
_FORMAT = f"<{len(FIELDS)}q"
_SIZE = struct.calcsize(_FORMAT)
_INDEX = {name: k for k, name in enumerate(FIELDS)}
HERE = Path(__file__).resolve().parent


def read_counts(directory: Path) -> dict[str, int]:
    """Every process's counters in ``directory``, added up."""
    total = dict.fromkeys(FIELDS, 0)
    for path in directory.iterdir():
        data = path.read_bytes()
        if len(data) < _SIZE:
            continue
        for name, value in zip(FIELDS, struct.unpack(_FORMAT, data[:_SIZE]), strict=True):
            total[name] += value
    return total


class Counters:
    """This process's counters, in ``directory/<pid>``; a forked child opens its own."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._open()
        os.register_at_fork(after_in_child=self._open)

    def _open(self) -> None:
        self._lock = threading.Lock()
        path = self._directory / str(os.getpid())
        path.write_bytes(bytes(_SIZE))
        with path.open("r+b") as file:
            self._map = mmap.mmap(file.fileno(), _SIZE)

    def add(self, name: str, n: int = 1) -> None:
        offset = 8 * _INDEX[name]
        with self._lock:
            (value,) = struct.unpack_from("<q", self._map, offset)
            struct.pack_into("<q", self._map, offset, value + n)


_current = threading.local()


def _length(request: Any) -> int:
    for name in ("content", "body", "data"):
        body = getattr(request, name, None)
        if isinstance(body, bytes | bytearray | str):
            return len(body)
    return 0


def _install(counters: Counters) -> None:
    from azure.core.pipeline.transport import RequestsTransport
    from azure.data.tables import TableClient, TableTransactionError

    from scim_core.api import ScimApi

    handle = ScimApi.handle

    def counted_handle(self: Any, request: Any) -> Any:
        kind = "reads" if request.method.upper() in ("GET", "HEAD") else "writes"
        counters.add(f"scim_{kind}")
        _current.kind = kind
        try:
            return handle(self, request)
        finally:
            _current.kind = None

    send = RequestsTransport.send

    def counted_send(self: Any, request: Any, **kwargs: Any) -> Any:
        if getattr(_current, "sent", None) is request:  # the retry policy sends it again
            counters.add("storage_resent")
            return send(self, request, **kwargs)
        _current.sent = request
        url = str(request.url)
        # the tenant's registry row and token versions, read when a cache expires, whatever
        # the request: not the request's own work
        admission = any(f"'{p}'" in unquote(unquote(url)) for p in ("$tenants", "$secrets"))
        kind = None if admission else getattr(_current, "kind", None)
        counters.add(f"storage_{kind}" if kind else "storage_other")
        if request.method == "GET" and ("RowKey='feed')" in url or "RowKey=%27feed%27)" in url):
            counters.add("feed_reads")
            if kind == "writes":
                counters.add("feed_reads_writing")
        counters.add("bytes_out", _length(request))
        return send(self, request, **kwargs)

    submit = TableClient.submit_transaction

    def counted_submit(self: Any, *args: Any, **kwargs: Any) -> Any:
        counters.add("transactions")
        try:
            return submit(self, *args, **kwargs)
        except TableTransactionError as error:
            counters.add("transactions_failed")
            if error.status_code == 412:
                counters.add("transactions_412")
            raise

    ScimApi.handle = counted_handle  # type: ignore[method-assign]
    RequestsTransport.send = counted_send
    TableClient.submit_transaction = counted_submit  # type: ignore[method-assign]
    try:
        from scim_core.store.tables.feed import FeedWrite
    except ImportError:  # a revision before the change feed
        return
    moved = FeedWrite.moved

    def counted_moved(self: Any) -> None:
        counters.add("feed_moved")
        moved(self)

    committed = FeedWrite.committed

    def counted_committed(self: Any, results: Any) -> None:
        if getattr(self, "_rows", None) or getattr(self, "_placed", 0):  # placed events
            counters.add("feed_commits")
            lost = int(getattr(self, "_attempts", 0))
            counters.add(next((name for most, name in _LOST if lost <= most),
                              "feed_lost_4_plus"))
        committed(self, results)

    FeedWrite.moved = counted_moved  # type: ignore[method-assign]
    FeedWrite.committed = counted_committed  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python bench/counted_host.py DIR [dev host arguments]")
    directory = Path(argv[0])
    directory.mkdir(parents=True, exist_ok=True)
    _install(Counters(directory))
    import devhost

    raise SystemExit(devhost.main(argv[1:]))


if __name__ == "__main__":
    # Run by path, this file's folder is first on sys.path; its modules must not shadow
    # the served tree's.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    main(sys.argv[1:])
