"""Reading the activity log: entries by time range, status class, operation and named
value with cursor paging, minute aggregates, and connection health (``ActivityLog``)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scim_core.activity.entry import AUTH_FAILURE, Entry, iso_time, status_class
from scim_core.activity.layout import (
    HEALTH_ROW,
    entry_partition,
    health_partition,
    inverted,
    minute_partition,
    name_key,
)
from scim_core.activity.rows import ActivityRows, Row
from scim_core.activity.stats import MinuteStats

__all__ = ["STATUS_CLASSES", "ActivityLog", "BadQuery", "Page"]

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "auth")
MAX_LIMIT = 1000
SCAN_PAGE = 200
MAX_MINUTE_DAYS = 400
"""The widest range of minute aggregates read (past any retention setting's default)."""


class BadQuery(ValueError):
    """A search parameter is malformed (the message says which and how)."""


@dataclass(frozen=True)
class Page:
    """One page of entries, newest first; ``cursor`` fetches the next (None: the last)."""

    entries: list[Entry]
    cursor: str | None


def parse_time(text: str | None, name: str) -> float | None:
    """An ISO 8601 time (``Z`` or an offset; a date alone is its midnight UTC)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadQuery(f"{name} must be an ISO 8601 time, not {text[:50]!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode(cursor: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if isinstance(state, dict) and isinstance(state.get("d"), str) \
                and isinstance(state.get("k"), str):
            return state
    except (ValueError, UnicodeDecodeError):
        pass
    raise BadQuery("cursor is not one this log returned")


class ActivityLog:
    """The activity of every tenant in ``rows``; ``days`` is how far back a search with
    no ``since`` looks (the entries' retention)."""

    def __init__(self, rows: ActivityRows, *, days: int = 14, clock: Any = time.time) -> None:
        self.rows = rows
        self.days = days
        self.clock = clock

    def search(self, tenant: str, *, since: str | float | None = None,
               until: str | float | None = None, status: str | None = None,
               operation: str | None = None, name: str | None = None, limit: int = 50,
               cursor: str | None = None) -> Page:
        """``tenant``'s entries newest first: from ``since`` up to ``until`` (ISO times),
        of a status class (``2xx`` ... ``5xx``, or ``auth`` for auth failures), an
        operation (``POST /Users``), naming ``name`` (a userName, externalId, displayName
        or resource id, in any letter case); at most ``limit``, the rest behind ``cursor``."""
        if status is not None and status not in STATUS_CLASSES:
            raise BadQuery(f"status must be one of {', '.join(STATUS_CLASSES)}")
        if not 1 <= limit <= MAX_LIMIT:
            raise BadQuery(f"limit must be 1 to {MAX_LIMIT}")
        now = self.clock()
        start = (since if isinstance(since, float | int) else parse_time(since, "since")) \
            or now - self.days * 86400.0
        end = (until if isinstance(until, float | int) else parse_time(until, "until")) \
            or now + 60.0
        # Nothing older than the retention (and a day's slack) or newer than a day ahead is
        # kept: a wider range would only scan empty days.
        start, end = max(start, now - (self.days + 2) * 86400.0), min(end, now + 86400.0)
        prefix = f"n|{name_key(name)}|" if name else "e|"
        low_stamp = inverted(end)
        high = prefix + inverted(start) + "~"
        state = _decode(cursor) if cursor else None
        found: list[Entry] = []
        for day in _days_back(end, start):
            if state is not None and day > state["d"]:
                continue
            partition = entry_partition(tenant, day)
            low = prefix + low_stamp
            if state is not None and day == state["d"]:
                low = max(low, state["k"])
            while True:
                rows = self.rows.range(partition, low, high, limit=SCAN_PAGE)
                for row in rows:
                    entry = _entry(row)
                    if _wanted(entry, status, operation):
                        found.append(entry)
                    if len(found) >= limit:
                        return Page(found, _encode({"d": day, "k": row["RowKey"]}))
                if len(rows) < SCAN_PAGE:
                    break
                low = rows[-1]["RowKey"]
        return Page(found, None)

    def minutes(self, tenant: str, *, since: str | float | None = None,
                until: str | float | None = None, operation: str | None = None
                ) -> list[dict[str, Any]]:
        """``tenant``'s per-minute aggregates (oldest first): requests, 2xx/4xx/5xx, p50
        and p95 duration in milliseconds (bucket bounds), per operation."""
        now = self.clock()
        start = (since if isinstance(since, float | int) else parse_time(since, "since")) \
            or now - 3600.0
        end = (until if isinstance(until, float | int) else parse_time(until, "until")) or now
        start, end = max(start, now - MAX_MINUTE_DAYS * 86400.0), min(end, now + 86400.0)
        first, last = _minute(start), _minute(end)
        out: list[dict[str, Any]] = []
        for day in reversed(list(_days_back(end, start))):
            for row in self.rows.range(minute_partition(tenant, day), "", "~", limit=100_000):
                minute = str(row.get("minute", ""))
                if not first <= minute <= last:
                    continue
                if operation and row.get("operation") != operation:
                    continue
                stats = MinuteStats.from_properties(row)
                out.append({"minute": f"{minute[:4]}-{minute[4:6]}-{minute[6:8]}T"
                                      f"{minute[8:10]}:{minute[10:12]}Z",
                            "operation": row.get("operation"), "requests": stats.requests,
                            "2xx": stats.s2xx, "4xx": stats.s4xx, "5xx": stats.s5xx,
                            "p50Ms": stats.percentile(0.5), "p95Ms": stats.percentile(0.95)})
        return out

    def health(self, tenant: str) -> dict[str, Any]:
        """``tenant``'s connection health: first and last request seen, last success,
        last auth failure and its reason (times ISO 8601; absent when never seen)."""
        rows = self.rows.range(health_partition(tenant), "", "~", limit=10)
        row = next((r for r in rows if r["RowKey"] == HEALTH_ROW), None)
        if row is None:
            return {"tenant": tenant, "seen": False}
        out: dict[str, Any] = {"tenant": tenant, "seen": True}
        for key, name in (("first", "firstRequest"), ("last", "lastRequest"),
                          ("last_success", "lastSuccess"),
                          ("last_auth_failure", "lastAuthFailure")):
            value = row.get(key)
            if isinstance(value, int | float):
                out[name] = iso_time(float(value))
        if row.get("auth_failure_reason"):
            out["lastAuthFailureReason"] = row["auth_failure_reason"]
        out["tokenVersions"] = token_uses(row.get("token_uses"))
        return out


def token_uses(stored: object) -> list[dict[str, Any]]:
    """A health row's ``token_uses`` as ``[{"version", "lastUsed"}]``, latest first."""
    if not isinstance(stored, str) or not stored:
        return []
    try:
        loaded = json.loads(stored)
    except ValueError:
        return []
    if not isinstance(loaded, dict):
        return []
    uses = sorted(((str(k), float(v)) for k, v in loaded.items()
                   if isinstance(v, int | float)), key=lambda item: item[1], reverse=True)
    return [{"version": version, "lastUsed": iso_time(at)} for version, at in uses]


def _entry(row: Row) -> Entry:
    stamp, unique = row["RowKey"].split("|")[-2:]
    day = row["PartitionKey"].rsplit("|e", 1)[-1]
    return Entry.from_properties(row, f"{day}.{stamp}.{unique}")


def _wanted(entry: Entry, status: str | None, operation: str | None) -> bool:
    if operation and entry.operation.lower() != operation.lower():
        return False
    if status == "auth":
        return entry.outcome == AUTH_FAILURE
    return status is None or status_class(entry.status) == status


def _days_back(end: float, start: float) -> Iterator[str]:
    """The UTC days from ``end``'s back to ``start``'s."""
    day = datetime.fromtimestamp(end, UTC).date()
    first = datetime.fromtimestamp(start, UTC).date()
    while day >= first:
        yield day.strftime("%Y%m%d")
        day -= timedelta(days=1)


def _minute(at: float) -> str:
    return time.strftime("%Y%m%d%H%M", time.gmtime(at))


