"""What every benchmark report is made of: a target (goal, measured, passed) and a
Markdown table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str
    passed: bool | None
    """None: not measured in this run."""
    note: str = ""


def table(headers: list[str], rows: list[list[str]], *, left: int = 3) -> list[str]:
    """A Markdown table; the first ``left`` columns are text, the rest figures."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < left else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                                 ) + " |"

    return [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *(line(r) for r in rows)]
