"""Group commit on PostgreSQL: units of one kind that arrive while one of theirs
is being written wait, and go together in the next write, one statement and
one transaction for all (SQLite's store does the same on its writer thread).
Nobody waits on purpose: a lone unit is written at once; under load each
write carries what arrived during the one before. Each caller returns once its
own unit is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

A = TypeVar("A")


class Batches(Generic[A]):
    def __init__(self, write: Callable[[list[A]], Awaitable[None]],
                 start: Callable[[Awaitable[None]], asyncio.Future[None]]) -> None:
        """`write` commits a batch (all of it or nothing); `start` runs the
        writing as a task that the store's `settled` and `close` wait for."""
        self._write = write
        self._start = start
        self._waiting: list[tuple[A, asyncio.Future[None]]] = []
        self._writing = False

    async def add(self, unit: A) -> None:
        """Write `unit` with whatever else is waiting; return once committed.
        A caller that goes away does not take its unit out of the batch."""
        done = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieved)
        self._waiting.append((unit, done))
        if not self._writing:
            self._writing = True
            self._start(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        batch: list[tuple[A, asyncio.Future[None]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._write([unit for unit, _ in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        batch[0][1].set_exception(exc)
                        continue
                    # One bad unit (or a deadlock) must not fail the others:
                    # each goes again on its own.
                    for unit, done in batch:
                        try:
                            await self._write([unit])
                        except Exception as alone:
                            done.set_exception(alone)
                        else:
                            done.set_result(None)
                    continue
                for _, done in batch:
                    done.set_result(None)
        finally:
            self._writing = False
            for _, done in batch + self._waiting:  # cancelled: none of it is known written
                if not done.done():
                    done.set_exception(RuntimeError("the store stopped before this write"))
            self._waiting = []


def _retrieved(done: asyncio.Future[None]) -> None:
    """A caller that went away never reads its unit's failure: read it here so
    that asyncio does not report it as never retrieved (the store logs)."""
    if not done.cancelled():
        done.exception()
