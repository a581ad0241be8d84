"""This process's wake-ups: the one way a worker is woken. A store calls the
wakes registered for a queue (`Store.on_work`) once a unit of work that filled
it has committed, whoever made the unit (a request, the pipeline, a worker);
on PostgreSQL, a NOTIFY from another process does too. A wake-up may be lost:
workers still poll, this only cuts their latency."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Literal

log = logging.getLogger("wagate.store")

Queue = Literal["outbound", "deliveries", "media", "managed"]


class Wakeups:
    def __init__(self) -> None:
        self._wakes: dict[str, list[Callable[[], None]]] = {}

    def add(self, queue: Queue, wake: Callable[[], None]) -> None:
        self._wakes.setdefault(queue, []).append(wake)

    def call(self, queues: Iterable[str]) -> None:
        """Wake the workers of `queues` (a committed unit filled them)."""
        for queue in queues:
            for wake in self._wakes.get(queue, ()):
                try:
                    wake()
                except Exception:  # the unit is committed: its wake-up is not its failure
                    log.exception("waking the %s workers failed", queue)
