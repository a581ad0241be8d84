"""What every reliability suite shares: the result row, the table, local ports.

A suite is a module `reliability/<name>.py` with
`async def run(small: bool, workdir: Path) -> list[Row]`: `small` is the form
`make test` runs (a couple of kills, a few hundred cases), else the full form of
`make reliability`. Every loop is bounded in count and time, and every address
is on loopback.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One measured figure of a suite, beside its target."""

    suite: str
    measure: str
    figure: str
    target: str = ""   # empty: reported, not judged
    met: bool = True

    @property
    def verdict(self) -> str:
        if not self.target:
            return "reported"
        return "met" if self.met else "NOT MET"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table(rows: list[Row]) -> str:
    head = ("suite", "measure", "figure", "target", "verdict")
    cells = [head, *((r.suite, r.measure, r.figure, r.target or "-", r.verdict) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = [" | ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip() for c in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
