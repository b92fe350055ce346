"""A token bucket: at most ``rate`` events per second on average, ``burst`` at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimit:
    """Allows ``burst`` events at once and ``rate`` per second after that (a token bucket)."""

    def __init__(self, rate: float, burst: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._available = float(burst)
        self._at = clock()

    def take(self) -> bool:
        """Whether one more event is allowed now (and, if so, count it)."""
        with self._lock:
            now = self._clock()
            # A clock stepping back refills nothing.
            elapsed = max(0.0, now - self._at)
            self._at = now
            self._available = min(self._burst, self._available + elapsed * self._rate)
            if self._available < 1:
                return False
            self._available -= 1
            return True

    def give_back(self) -> None:
        """Return one event taken by ``take`` that turned out not to count."""
        with self._lock:
            self._available = min(self._burst, self._available + 1)
