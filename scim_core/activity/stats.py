"""Per-minute request counts and a small duration histogram, mergeable across processes."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BOUNDS_MS", "MinuteStats"]

BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)
"""Upper bounds of the histogram's buckets, in milliseconds; one more bucket holds the rest."""


@dataclass
class MinuteStats:
    """Requests of one operation in one minute: by status class, and durations bucketed."""

    requests: int = 0
    s2xx: int = 0
    s4xx: int = 0
    s5xx: int = 0
    other: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))

    def add(self, status: int, duration_ms: float) -> None:
        """Count one request."""
        self.requests += 1
        if 200 <= status < 300:
            self.s2xx += 1
        elif 400 <= status < 500:
            self.s4xx += 1
        elif status >= 500:
            self.s5xx += 1
        else:
            self.other += 1
        index = next((i for i, bound in enumerate(BOUNDS_MS) if duration_ms <= bound),
                     len(BOUNDS_MS))
        self.buckets[index] += 1

    def merge(self, other: MinuteStats) -> MinuteStats:
        """The sum of both."""
        return MinuteStats(self.requests + other.requests, self.s2xx + other.s2xx,
                           self.s4xx + other.s4xx, self.s5xx + other.s5xx,
                           self.other + other.other,
                           [a + b for a, b in zip(self.buckets, other.buckets, strict=True)])

    def percentile(self, share: float) -> float | None:
        """The bucket bound under which ``share`` of the durations fall (None: no request;
        beyond the last bound: twice it)."""
        if not self.requests:
            return None
        wanted = share * self.requests
        seen = 0
        for i, count in enumerate(self.buckets):
            seen += count
            if seen >= wanted:
                return float(BOUNDS_MS[i]) if i < len(BOUNDS_MS) else 2.0 * BOUNDS_MS[-1]
        return 2.0 * BOUNDS_MS[-1]

    def properties(self) -> dict[str, int | str]:
        """As stored properties."""
        return {"requests": self.requests, "s2xx": self.s2xx, "s4xx": self.s4xx,
                "s5xx": self.s5xx, "other": self.other,
                "buckets": ",".join(str(n) for n in self.buckets)}

    @classmethod
    def from_properties(cls, props: dict[str, object]) -> MinuteStats:
        """The stats stored as ``props``."""
        raw = str(props.get("buckets", ""))
        buckets = [int(n) for n in raw.split(",")] if raw else []
        if len(buckets) != len(BOUNDS_MS) + 1:
            buckets = [0] * (len(BOUNDS_MS) + 1)

        def number(name: str) -> int:
            value = props.get(name, 0)
            return int(value) if isinstance(value, int | str) else 0

        return cls(number("requests"), number("s2xx"), number("s4xx"), number("s5xx"),
                   number("other"), buckets)
