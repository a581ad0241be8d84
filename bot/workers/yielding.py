"""Background work yields to requests, for a while: while the service is
answering requests a worker starts only a few fresh sends, so a short burst is
acknowledged first and the queue drains in its gaps and after it. Work that
has waited `max_wait` seconds past its due time goes regardless, at the
worker's full pace: under sustained load the queue keeps up instead of
falling ever further behind. Nothing waits in memory: what is not claimed
stays queued in the store."""

from __future__ import annotations

from collections.abc import Callable

MAX_WAIT = 0.25  # seconds a due send may be held back for requests


class ForegroundFirst:
    def __init__(self, busy: Callable[[], bool], *, while_busy: int = 4,
                 max_wait: float = MAX_WAIT) -> None:
        self.busy = busy  # are requests in flight?
        self.while_busy = while_busy
        self.max_wait = max_wait

    def limit(self, normal: int) -> int:
        """How many sends a worker may hold now, counting fresh work."""
        return min(normal, self.while_busy) if self.busy() else normal

    def due_by(self, now: float, held: int, normal: int) -> tuple[int, float]:
        """What a worker holding `held` sends may claim now: how many more, and
        up to which due time. Within the limit, whatever is due; past it, only
        what has waited `max_wait` already, up to the full `normal`."""
        room = self.limit(normal) - held
        if room > 0:
            return room, now
        return normal - held, now - self.max_wait
