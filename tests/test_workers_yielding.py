"""Background sends yield to requests in flight, and never stop altogether."""

from __future__ import annotations

from bot.workers.yielding import ForegroundFirst


def test_limit_follows_foreground_load() -> None:
    busy = [False]
    gate = ForegroundFirst(lambda: busy[0], while_busy=4)
    assert gate.limit(512) == 512
    busy[0] = True
    assert gate.limit(512) == 4  # still draining, a few at a time
    assert gate.limit(2) == 2
    busy[0] = False
    assert gate.limit(512) == 512
