"""Background sends yield to requests in flight, never stop altogether, and
what has waited long enough goes regardless."""

from __future__ import annotations

import pytest

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


@pytest.mark.slow  # sustained load for seconds
def test_what_has_waited_goes_at_full_pace_under_sustained_load() -> None:
    busy = [True]
    gate = ForegroundFirst(lambda: busy[0], while_busy=4, max_wait=0.25)
    assert gate.due_by(100.0, 1, 512) == (3, 100.0)  # fresh work, within the few
    assert gate.due_by(100.0, 4, 512) == (508, 99.75)  # past them: what waited 0.25 s
    assert gate.due_by(100.0, 512, 512) == (0, 99.75)
    busy[0] = False
    assert gate.due_by(100.0, 4, 512) == (508, 100.0)
