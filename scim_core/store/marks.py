"""Where listings by position stopped: per process, a bounded map from a listing's offset to
the key of the resource just before it, so that the next page reads on from there."""

from __future__ import annotations

import bisect
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

CONTINUATION_SECONDS = 600.0
"""How long the end of a served page stays a place to continue from after the tenant's
resources came or went."""
MAX_LISTINGS = 1024
MAX_MARKS = 4096
"""Marks kept per listing (one tenant's resources of one kind)."""


@dataclass(frozen=True)
class Mark:
    key: str
    """The key of the last resource before the mark's offset."""
    version: int
    """The tenant's roster version (see ``Counts``) the offset was exact at."""
    at: float
    served: bool
    """It ends a page that was served: a listing by position continues from it."""


@dataclass
class _Listing:
    marks: dict[int, Mark]
    offsets: list[int]


class Marks:
    """Marks of up to ``listings`` listings (least recently used forgotten first), each up
    to ``per_listing`` marks (oldest forgotten first). Thread-safe."""

    def __init__(self, *, listings: int = MAX_LISTINGS, per_listing: int = MAX_MARKS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._listings: OrderedDict[Hashable, _Listing] = OrderedDict()
        self._size = max(1, listings)
        self._per_listing = max(1, per_listing)
        self._clock = clock
        self._lock = threading.Lock()

    def start(self, listing: Hashable, offset: int, version: int) -> tuple[int, str | None]:
        """Where a page at ``offset`` reads from: a known offset at or below it and the key
        before that offset (None: from the first resource). A mark exactly at ``offset``
        that ended a served page is taken as is for ``CONTINUATION_SECONDS`` even when
        resources came or went since (the next page of a listing continues where the last
        stopped, so a listing sees every resource that exists throughout exactly once);
        otherwise only marks made at the current ``version`` count."""
        with self._lock:
            found = self._listings.get(listing)
            if found is None:
                return 0, None
            self._listings.move_to_end(listing)
            exact = found.marks.get(offset)
            if exact is not None and (exact.version == version or (
                    exact.served and self._clock() - exact.at < CONTINUATION_SECONDS)):
                return offset, exact.key
            below = bisect.bisect_right(found.offsets, offset)
            for candidate in reversed(found.offsets[:below]):
                mark = found.marks[candidate]
                if mark.version == version:
                    return candidate, mark.key
            return 0, None

    def put(self, listing: Hashable, offset: int, key: str, version: int, *,
            served: bool) -> None:
        """Remember that ``key`` is the last resource before ``offset`` at ``version``."""
        if offset <= 0:
            return
        with self._lock:
            found = self._listings.get(listing)
            if found is None:
                found = self._listings[listing] = _Listing({}, [])
                while len(self._listings) > self._size:
                    self._listings.popitem(last=False)
            self._listings.move_to_end(listing)
            if found.marks.pop(offset, None) is None:
                bisect.insort(found.offsets, offset)
            found.marks[offset] = Mark(key, version, self._clock(), served)
            while len(found.marks) > self._per_listing:
                oldest = next(iter(found.marks))
                del found.marks[oldest]
                found.offsets.pop(bisect.bisect_left(found.offsets, oldest))

    def forget(self, listing: Hashable) -> None:
        """Drop a listing's marks."""
        with self._lock:
            self._listings.pop(listing, None)
