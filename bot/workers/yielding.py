"""Background work yields to requests: while the service is answering
requests, a worker keeps only a few sends in flight, so a burst is
acknowledged first and the queues drain in its gaps and after it. Nothing
waits in memory: what is not claimed stays queued in the store."""

from __future__ import annotations

from collections.abc import Callable


class ForegroundFirst:
    def __init__(self, busy: Callable[[], bool], *, while_busy: int = 4) -> None:
        self.busy = busy  # are requests in flight?
        self.while_busy = while_busy

    def limit(self, normal: int) -> int:
        """How many sends a worker may hold now."""
        return min(normal, self.while_busy) if self.busy() else normal
