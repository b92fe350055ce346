"""The one retry policy: which layer retries what, how often, with what back-off and for how
long (docs/architecture.md, "Retries").

- Transport failures (connection errors, timeouts, 408/429/5xx): the Azure SDK only, with
  ``TRANSPORT`` (``store/tables/client.py`` turns it into the client's retry options, and no
  single wait exceeds ``MAX_TRANSPORT_WAIT``). Nothing above retries them: the store turns
  what is left into ``StorageUnavailable`` and the client gets 503 with Retry-After.
- Lost optimistic-concurrency races: only the layer that read the etag it lost on, and only
  its own race. The service re-reads and re-plans a resource whose etag moved
  (``DOCUMENT_RACE``); the store re-reads the rows it chose itself: an index swap or a
  count (``STORE_RACE``), a delete's final batch under member edits (``DELETE_RACE``); the
  change feed re-reads its head when another process took the positions (``FEED_RACE``);
  the tenant admin re-reads a registry row (``TENANT_STATE``). A layer that gives up raises
  ``StorageUnavailable``/``Conflict``, which no layer above retries, so nothing is retried
  twice.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Retry:
    """At most ``attempts`` tries (None: no count) within ``seconds`` of the first; before
    try n (after the ``immediate`` ones), a pause drawn uniformly from [0, min(``cap``,
    ``base`` * 2**k)], k counting from 0 (full jitter, so racing processes fall out of step;
    ``base`` 0: no pause)."""

    attempts: int | None
    seconds: float
    base: float = 0.0
    cap: float = 0.0
    immediate: int = 0
    """How many retries go at once, before the pauses start."""

    def pause(self, attempt: int) -> float:
        """The longest pause before try ``attempt`` (0 is the first try: no pause)."""
        if attempt <= self.immediate or self.base <= 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** (attempt - self.immediate - 1))

    @property
    def retries(self) -> int:
        """The retries after the first try, for a client that takes a count (the SDK's)."""
        if self.attempts is None:
            raise ValueError("this policy is bounded in time only")
        return self.attempts - 1

    def spent(self, attempt: int, elapsed: float) -> bool:
        """Whether try ``attempt`` (0 is the first), ``elapsed`` seconds after the first,
        is past the bound: ``attempts`` tries made, or ``seconds`` gone."""
        return ((self.attempts is not None and attempt >= self.attempts)
                or (attempt > 0 and elapsed >= self.seconds))

    def tries(self, *, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep,
              jitter: Callable[[float, float], float] = random.uniform) -> Iterator[int]:
        """The try numbers 0, 1, ...: at most ``attempts`` of them, none starting once
        ``seconds`` have passed since the first, each after its jittered pause."""
        began = clock()
        for attempt in itertools.count():
            if self.spent(attempt, clock() - began if attempt else 0.0):
                return
            if attempt:
                longest = self.pause(attempt)
                if longest > 0:
                    sleep(jitter(0.0, longest))
            yield attempt


TRANSPORT = Retry(attempts=4, seconds=20.0, base=0.4, cap=2.0)
"""The SDK's retries of one storage request (3 retries after the first try)."""
MAX_TRANSPORT_WAIT = 2.0
"""No single SDK wait is longer, whatever Retry-After storage sent."""
DOCUMENT_RACE = Retry(attempts=8, seconds=10.0, base=0.002, cap=0.05)
"""The service: a write whose resource changed since it was read is planned again."""
STORE_RACE = Retry(attempts=5, seconds=5.0)
"""The table store: an index swap or a count over rows that moved while it wrote."""
DELETE_RACE = Retry(attempts=20, seconds=10.0, base=0.002, cap=0.05)
"""The table store: a delete's final batch (a busy group's member edits move its etag)."""
FEED_RACE = Retry(attempts=None, seconds=10.0, base=0.002, cap=0.05, immediate=3)
"""The change feed: positions taken by another process's transaction. Bounded in time only
(no count of lost races makes a write give up while storage answers): each loss costs one
read of the feed row and one resubmission, of the process's whole group commit
(``store/tables/group_commit.py``). The first three retries go at once; the pause grows
once races keep being lost."""
TENANT_STATE = Retry(attempts=20, seconds=10.0, base=0.002, cap=0.05)
"""The tenant admin: a registry row changed by another process since it was read."""
