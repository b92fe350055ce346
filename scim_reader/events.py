"""A tenant's change feed, read side: pages of events after a cursor, the feed's position
now, and a polling ``follow`` (docs/host-app.md, "The change feed")."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from scim_reader import layout
from scim_reader.errors import CursorExpired, InvalidCursor, is_table_missing, reading
from scim_reader.listing import MAX_PER_PAGE
from scim_reader.models import Event, event_from_row

Cursor = int | str | None
"""A position: the ``cursor`` of an ``EventPage``, an ``Event.position``, or None (or
``"0"``) for the beginning of the feed."""

Stop = Callable[[], bool] | threading.Event | None

_POSITION = re.compile(f"[0-9]{{1,{layout.POSITION_DIGITS}}}")
_STOP_CHECK_SECONDS = 0.05
_RESYNC = ("resynchronise: take position(), read the directory again (list_users, "
           "list_groups, list_members), then follow from that position")


@dataclass(frozen=True)
class EventPage:
    """Events in commit order, and the cursor to read on from: the last event's position,
    or the cursor that was given when there were none."""

    events: tuple[Event, ...]
    cursor: str


def position_of(cursor: Cursor) -> int:
    """The position a cursor holds; ``InvalidCursor`` (a ``ValueError``) for anything that
    is not a position."""
    if cursor is None:
        return 0
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        if 0 <= cursor < 10 ** layout.POSITION_DIGITS:
            return cursor
    elif isinstance(cursor, str) and _POSITION.fullmatch(cursor):
        return int(cursor)
    shown = repr(cursor) if len(repr(cursor)) <= 40 else repr(cursor)[:37] + "..."
    raise InvalidCursor(f"an events cursor is a position: None or \"0\" for the beginning, "
                        f"or an EventPage's cursor (up to {layout.POSITION_DIGITS} digits), "
                        f"not {shown}")


class Feed:
    """One tenant's event rows and feed row (``TenantReader`` serves this)."""

    def __init__(self, client: TableClient, partition: str) -> None:
        self._client = client
        self._partition = partition

    def page(self, after: Cursor, limit: int) -> EventPage:
        """Up to ``limit`` events after ``after``: the run of consecutive positions that
        starts right after it. A gap there is retention's (``CursorExpired``), or a batch
        still landing on a storage emulator (nothing yet: the next read finds it)."""
        start = position_of(after)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        low, high = layout.events_after(start)
        found: list[Event] = []
        with reading(self._client.table_name):
            rows = self._client.query_entities(
                "PartitionKey eq @partition and RowKey gt @low and RowKey lt @high",
                parameters={"partition": self._partition, "low": low, "high": high},
                results_per_page=min(limit, MAX_PER_PAGE))
            for entity in rows:
                event = event_from_row(entity)
                if event.position != start + 1 + len(found):
                    break
                found.append(event)
                if len(found) == limit:
                    break
            if not found:
                self._check_cursor(start)
        return EventPage(tuple(found), str(found[-1].position if found else start))

    def _check_cursor(self, start: int) -> None:
        """Raise ``CursorExpired`` when nothing follows ``start`` because retention removed
        it, or because the feed is behind the cursor (it started over)."""
        feed = self._feed_row()
        if feed is None:
            return
        floor = int(feed.get("floor") or 0)
        if floor > start:
            # Retention raises the floor; so does a delete (its tombstone keeps no event)
            # and a re-created id, whose feed numbers on past every position of the tenant
            # before it: that tenant's cursors all land here.
            raise CursorExpired(f"events after position {start} were removed, by retention "
                                "or because the tenant was deleted (its id may now name a "
                                f"new tenant); the feed keeps those after {floor}; {_RESYNC}",
                                cursor=start, floor=floor)
        last = feed.get("position")
        if last is not None and int(last) < start:
            raise CursorExpired(f"the feed's last position is {int(last)}, before the cursor "
                                f"{start}: the feed started over (the tenant was deleted and "
                                f"created again) or the cursor is another tenant's; {_RESYNC}",
                                cursor=start, floor=floor)

    def _feed_row(self) -> Mapping[str, Any] | None:
        try:
            found: Mapping[str, Any] = self._client.get_entity(
                self._partition, layout.FEED_ROW, select=["position", "floor"])
        except ResourceNotFoundError as error:
            if is_table_missing(error):
                raise
            return None
        return found

    def position(self) -> str:
        """The feed's last position now ("0" before the first event)."""
        with reading(self._client.table_name):
            feed = self._feed_row()
        return str(int((feed or {}).get("position") or 0))

    def follow(self, after: Cursor, *, poll_seconds: float, stop: Stop,
               limit: int) -> Iterator[Event]:
        """Every event after ``after``, polling every ``poll_seconds`` once caught up,
        until ``stop``. Checks its arguments now, not at the first ``next()``."""
        cursor = str(position_of(after))
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not poll_seconds > 0:
            raise ValueError(f"poll_seconds must be more than 0, not {poll_seconds}")
        stopped, wait = _stopper(stop)
        return self._follow(cursor, poll_seconds, stopped, wait, limit)

    def _follow(self, cursor: str, poll_seconds: float, stopped: Callable[[], bool],
                wait: Callable[[float], object], limit: int) -> Iterator[Event]:
        while not stopped():
            page = self.page(cursor, limit)
            for event in page.events:
                if stopped():
                    return
                yield event
            cursor = page.cursor
            if len(page.events) < limit:
                wait(poll_seconds)


def _stopper(stop: Stop) -> tuple[Callable[[], bool], Callable[[float], object]]:
    """Whether to stop, and how to wait up to some seconds while staying stoppable."""
    if stop is None:
        return (lambda: False), time.sleep
    if isinstance(stop, threading.Event):
        return stop.is_set, stop.wait
    check = stop

    def wait(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _STOP_CHECK_SECONDS))

    return check, wait
