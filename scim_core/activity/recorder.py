"""The activity recorder: ``record`` appends to a bounded in-process buffer and returns;
a daemon thread turns what is buffered into entries and writes them in batches, with the
per-minute aggregates and the connection health. A full buffer or failing storage drops
entries (counted, logged once per run of drops); a SCIM request never waits for either.

What a crash loses: everything still in the buffer (about ``interval`` seconds of
requests, at most ``capacity`` entries), the rows of partial batches (at most ``max_wait``
seconds old), the current minute's aggregates, and health updates of the last
``health_interval`` seconds."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from scim_core.activity.entry import REQUEST_ID_HEADERS, Entry, Seen, build_entry
from scim_core.activity.layout import (
    HEALTH_ROW,
    day_of,
    entry_partition,
    health_partition,
    inverted,
    minute_key,
    minute_partition,
    name_key,
)
from scim_core.activity.rows import ActivityRows, ActivityStoreError, Row
from scim_core.activity.stats import MinuteStats
from scim_core.auth.bearer import bearer_token
from scim_core.http import Request, Response

__all__ = ["ActivityRecorder", "NullRecorder", "Recorder"]

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 10_000
MAX_HELD_REQUEST = 16_384
MAX_HELD_RESPONSE = 4_096
DEFAULT_BYTE_BUDGET = 32 * 1024 * 1024
BATCH = 100
TOKEN_VERSIONS_KEPT = 10


class Recorder:
    """What ``ScimApi`` records through: ``record`` never raises, never blocks on I/O."""

    def record(self, request: Request, response: Response, tenant: str | None,
               auth_failure: str | None, duration_s: float, *, route: str | None = None,
               token_version: str | None = None) -> None:
        """Note one request of ``tenant`` (None: no known tenant was named). ``route``:
        the route template of a request outside the SCIM API (a management call naming
        the tenant, ``/manage/v1/tenants/{id}/users``); SCIM routes are worked out.
        ``token_version``: the version of the tenant's token that the request's token
        matched (its health's "last used")."""

    def close(self, *, timeout: float = 5.0) -> None:
        """Stop; write what is pending for up to ``timeout`` seconds."""


class NullRecorder(Recorder):
    """Records nothing (``SCIM_ACTIVITY=false``)."""


@dataclass
class _Health:
    first: float
    last: float
    last_success: float | None = None
    last_auth_failure: float | None = None
    auth_failure_reason: str | None = None
    token_used: dict[str, float] = field(default_factory=dict)
    """Each token version's last use seen by this process."""
    dirty: bool = True
    written_at: float = 0.0


@dataclass
class Counters:
    """What the recorder did since it started (per process)."""

    recorded: int = 0
    written: int = 0
    dropped_full: int = 0
    dropped_storage: int = 0
    bodies_dropped: int = 0
    unrecorded_refusals: int = 0
    """Refused requests that named no known tenant (no well-formed bearer, unknown tenant):
    counted only, never looked up or stored."""
    minute_rows_dropped: int = 0
    batches: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    writer_cpu_s: float = 0.0
    """CPU time the writer thread spent building and writing (what the log costs the app
    beyond ``record``)."""


class ActivityRecorder(Recorder):
    """The buffer and its writer thread over ``rows``.

    ``capacity``: most requests held; ``byte_budget``: most body bytes held (beyond it an
    entry keeps no names or body from its bodies). The writer wakes every ``interval``
    seconds, or when ``wake_at`` requests wait, writes every entry (whole batches of up
    to 100 rows per partition; a partition's last, partial batch waits up to ``max_wait``
    seconds for more), then the aggregates of finished minutes and each tenant's health
    row at most every ``health_interval`` seconds."""

    def __init__(self, rows: ActivityRows, *, endpoints: frozenset[str],
                 bodies: bool = True, capacity: int = DEFAULT_CAPACITY,
                 byte_budget: int = DEFAULT_BYTE_BUDGET, interval: float = 2.0,
                 wake_at: int = 500, health_interval: float = 60.0, max_wait: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.rows = rows
        self.endpoints = endpoints
        self.bodies = bodies
        self.capacity = capacity
        self.byte_budget = byte_budget
        self.interval = interval
        self.wake_at = wake_at
        self.health_interval = health_interval
        self.max_wait = max_wait
        self.clock = clock
        self.counters = Counters()
        self._buffer: deque[Seen] = deque()
        self._held_bytes = 0
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = False
        self._flush_all = False
        self._minutes: dict[tuple[str, str, str], MinuteStats] = {}
        self._pending: dict[str, list[list[Row]]] = {}
        self._pending_since: dict[str, float] = {}
        self._health: dict[str, _Health] = {}
        self._tag = os.urandom(3).hex()
        self._sequence = 0
        self._full_logged = False
        self._storage_logged = False

    # -- the request path ------------------------------------------------------------------

    def record(self, request: Request, response: Response, tenant: str | None,
               auth_failure: str | None, duration_s: float, *, route: str | None = None,
               token_version: str | None = None) -> None:
        """Buffer one request; O(1) and never raises."""
        try:
            self._record(request, response, tenant, auth_failure, duration_s, route,
                         token_version)
        except Exception:  # recording must never fail a request
            log.debug("Activity entry not recorded", exc_info=True)

    def _record(self, request: Request, response: Response, tenant: str | None,
                auth_failure: str | None, duration_s: float, route: str | None,
                token_version: str | None = None) -> None:
        if tenant is None:
            if response.status == 401:
                with self._cond:
                    self.counters.unrecorded_refusals += 1
            return
        method = request.method.upper()
        failed = response.status >= 400
        asked = b""
        answered = b""
        token = None
        if auth_failure is None:
            if failed or method in ("POST", "PUT"):
                asked = request.body[:MAX_HELD_REQUEST]
            if failed or method != "GET" or response.status == 200:
                answered = response.body[:MAX_HELD_RESPONSE]
            if failed and self.bodies:
                token = bearer_token(request.header("Authorization"))
        seen = Seen(
            at=self.clock(), tenant=tenant, method=method, path=request.path,
            filter=request.param("filter") if auth_failure is None else None,
            status=response.status, duration_ms=duration_s * 1000.0,
            user_agent=request.header("User-Agent") if auth_failure is None else None,
            request_id=next((v for h in REQUEST_ID_HEADERS if (v := request.header(h))), None)
            if auth_failure is None else None,
            request_body=asked, response_body=answered, auth_failure=auth_failure,
            token=token, endpoints=self.endpoints, route=route,
            token_version=token_version if auth_failure is None else None)
        size = len(asked) + len(answered)
        with self._cond:
            if self._closed:
                return
            if len(self._buffer) >= self.capacity:
                self.counters.dropped_full += 1
                if not self._full_logged:
                    self._full_logged = True
                    log.warning("Activity buffer full (%d entries): dropping entries until "
                                "the writer catches up", self.capacity)
                return
            if self._held_bytes + size > self.byte_budget:
                seen = dataclasses.replace(seen, request_body=b"", response_body=b"")
                self.counters.bodies_dropped += 1
                size = 0
            self._held_bytes += size
            self._buffer.append(seen)
            self.counters.recorded += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="scim-activity")
                self._thread.start()
            if len(self._buffer) >= self.wake_at:
                self._cond.notify_all()

    # -- control ---------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Requests waiting in the buffer."""
        with self._cond:
            return len(self._buffer)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything now, this minute's aggregates and all health rows included;
        True when done within ``timeout`` seconds."""
        with self._cond:
            self._flush_all = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="scim-activity")
                self._thread.start()
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._flush_all, timeout)

    def close(self, *, timeout: float = 5.0) -> None:
        """Write what is pending (up to ``timeout`` seconds), then take nothing more."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._flush_all
                                    or len(self._buffer) >= self.wake_at, self.interval)
                if self._closed:
                    return
                if not self._buffer and not self._flush_all and not self._minutes \
                        and not self._pending and not any(h.dirty for h in self._health.values()):
                    self._thread = None  # idle: the next record starts a writer again
                    return
                taken = list(self._buffer)
                self._buffer.clear()
                self._held_bytes = 0
                everything = self._flush_all
                self._busy = True
            started = time.thread_time()
            try:
                self._write(taken, everything)
            except Exception:
                log.exception("Activity writer failed; its entries are dropped")
            finally:
                with self._cond:
                    self.counters.writer_cpu_s += time.thread_time() - started
                    self._busy = False
                    if everything:
                        self._flush_all = False
                    self._cond.notify_all()

    def _write(self, taken: list[Seen], everything: bool) -> None:
        now = self.clock()
        for seen in taken:
            entry, rows = self._entry_rows(seen)
            self._count(seen, entry)
            partition = rows[0]["PartitionKey"]
            self._pending.setdefault(partition, []).append(rows[:BATCH])
            self._pending_since.setdefault(partition, now)
        for partition in list(self._pending):
            groups = self._pending[partition]
            batch: list[Row] = []
            entries = 0
            for group in groups:
                if len(batch) + len(group) > BATCH:
                    self._submit(partition, batch, entries)
                    batch, entries = [], 0
                batch.extend(group)
                entries += 1
            # A partial batch waits (up to max_wait) for more rows of its partition.
            if batch and (everything or now - self._pending_since[partition] >= self.max_wait):
                self._submit(partition, batch, entries)
                batch = []
            if batch:
                self._pending[partition] = groups[-entries:]
            else:
                del self._pending[partition]
                del self._pending_since[partition]
        self._write_minutes(None if everything else _minute(now))
        self._write_health(now, everything)

    def _entry_rows(self, seen: Seen) -> tuple[Entry, list[Row]]:
        self._sequence += 1
        unique = f"{self._tag}{0xFFFFFFFF - self._sequence:08x}"  # newest first within a ms
        stamp = inverted(seen.at)
        day = day_of(seen.at)
        entry = build_entry(seen, bodies=self.bodies, entry_id=f"{day}.{stamp}.{unique}")
        partition = entry_partition(seen.tenant, day)
        props = entry.properties()
        rows: list[Row] = [{"PartitionKey": partition, "RowKey": f"e|{stamp}|{unique}", **props}]
        for value in entry.names:
            rows.append({"PartitionKey": partition,
                         "RowKey": f"n|{name_key(value)}|{stamp}|{unique}", **props})
        return entry, rows

    def _count(self, seen: Seen, entry: Entry) -> None:
        key = (seen.tenant, _minute(seen.at), entry.operation)
        self._minutes.setdefault(key, MinuteStats()).add(entry.status, entry.duration_ms)
        if not entry.from_scim_client:
            return  # connection health is the SCIM client's; the vendor's calls are not it
        health = self._health.get(seen.tenant)
        if health is None:
            health = self._health[seen.tenant] = _Health(first=seen.at, last=seen.at)
        health.last = max(health.last, seen.at)
        health.dirty = True
        if seen.auth_failure is not None:
            health.last_auth_failure = seen.at
            health.auth_failure_reason = seen.auth_failure
        elif seen.status < 400:
            health.last_success = seen.at
        if seen.token_version is not None:
            used = health.token_used.get(seen.token_version)
            health.token_used[seen.token_version] = seen.at if used is None \
                else max(used, seen.at)

    def _submit(self, partition: str, batch: list[Row], entries: int) -> None:
        try:
            self.rows.submit(partition, batch)
        except (ActivityStoreError, ValueError) as exc:
            self.counters.dropped_storage += entries
            reason = str(exc)
            self.counters.by_reason[reason] = self.counters.by_reason.get(reason, 0) + entries
            if not self._storage_logged:
                self._storage_logged = True
                log.warning("Activity entries dropped: storage failed (%s); counting drops "
                            "until a write succeeds again", reason)
            return
        self.counters.written += entries
        self.counters.batches += 1
        if self._storage_logged:
            self._storage_logged = False
            log.info("Activity entries are written again (%d dropped so far)",
                     self.counters.dropped_storage)

    def _write_minutes(self, current: str | None) -> None:
        done: dict[tuple[str, str], dict[str, MinuteStats]] = {}
        for key in [k for k in self._minutes if current is None or k[1] < current]:
            tenant, minute, operation = key
            done.setdefault((tenant, minute), {})[operation] = self._minutes.pop(key)
        for (tenant, minute), by_operation in done.items():
            try:
                merged = self._merge_minute(tenant, minute, by_operation)
            except ActivityStoreError:
                merged = False
            if not merged:
                self.counters.minute_rows_dropped += len(by_operation)

    def _merge_minute(self, tenant: str, minute: str,
                      by_operation: dict[str, MinuteStats]) -> bool:
        """One read of the minute's rows and one conditional batch (tried again when
        another process wrote them meanwhile)."""
        partition = minute_partition(tenant, minute[:8])
        hhmm = minute[8:]
        for _ in range(4):
            found = {r["RowKey"]: r for r in self.rows.range(partition, f"{hhmm}|",
                                                             f"{hhmm}}}", limit=1000)}
            rows: list[Row] = []
            for operation, stats in list(by_operation.items())[:BATCH]:
                row_key = minute_key(hhmm, operation)
                current = found.get(row_key)
                merged = stats if current is None else stats.merge(
                    MinuteStats.from_properties(current))
                rows.append({"PartitionKey": partition, "RowKey": row_key, "minute": minute,
                             "operation": operation, **merged.properties(),
                             "etag": None if current is None else current["etag"]})
            if self.rows.put_all(partition, rows):
                return True
        return False

    def _write_health(self, now: float, everything: bool) -> None:
        for tenant, health in self._health.items():
            if not health.dirty or (not everything
                                    and now - health.written_at < self.health_interval):
                continue
            try:
                self._merge_health(tenant, health)
                health.dirty = False
                health.written_at = now
            except ActivityStoreError:
                pass  # tried again at the next write

    def _merge_health(self, tenant: str, health: _Health) -> None:
        partition = health_partition(tenant)
        for _ in range(4):
            current = next((r for r in self.rows.range(partition, "", "~", limit=10)
                            if r["RowKey"] == HEALTH_ROW), None)
            row = _health_row(partition, health, current)
            if self.rows.put(row, etag=None if current is None else current["etag"]):
                return


def _minute(at: float) -> str:
    return time.strftime("%Y%m%d%H%M", time.gmtime(at))


def _latest(a: object, b: float | None) -> float | None:
    values = [v for v in (a, b) if isinstance(v, int | float)]
    return max(values) if values else None


def _health_row(partition: str, health: _Health, current: Row | None) -> Row:
    old = current or {}
    first = old.get("first")
    row: Row = {"PartitionKey": partition, "RowKey": HEALTH_ROW,
                "first": min(health.first, first) if isinstance(first, int | float)
                else health.first,
                "last": _latest(old.get("last"), health.last)}
    success = _latest(old.get("last_success"), health.last_success)
    if success is not None:
        row["last_success"] = success
    failure = _latest(old.get("last_auth_failure"), health.last_auth_failure)
    if failure is not None:
        row["last_auth_failure"] = failure
        mine = health.last_auth_failure is not None and failure == health.last_auth_failure
        reason = health.auth_failure_reason if mine else old.get("auth_failure_reason")
        if reason:
            row["auth_failure_reason"] = reason
    uses = merge_token_uses(old.get("token_uses"), health.token_used)
    if uses:
        row["token_uses"] = uses
    return row


def merge_token_uses(stored: object, seen: dict[str, float]) -> str | None:
    """The health row's ``token_uses`` (JSON ``{version: last use}``) with ``seen``
    merged in, the latest use kept per version, at most ``TOKEN_VERSIONS_KEPT`` versions
    (the most recently used)."""
    uses: dict[str, float] = {}
    if isinstance(stored, str) and stored:
        try:
            loaded = json.loads(stored)
        except ValueError:
            loaded = {}
        if isinstance(loaded, dict):
            uses = {str(k): float(v) for k, v in loaded.items() if isinstance(v, int | float)}
    for version, at in seen.items():
        uses[version] = max(at, uses.get(version, at))
    if not uses:
        return None
    kept = sorted(uses.items(), key=lambda item: item[1], reverse=True)[:TOKEN_VERSIONS_KEPT]
    return json.dumps(dict(kept), separators=(",", ":"))
