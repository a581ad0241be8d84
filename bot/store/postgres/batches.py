"""Group commit on PostgreSQL: units of one kind that arrive while one of theirs
is being written wait, and go together in the next write, one statement and
one transaction for all (SQLite's store does the same on its writer thread).
Nobody waits on purpose: a lone unit is written at once; under load each
write carries what arrived during the one before. Each caller returns once its
own unit is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Batches(Generic[A, R]):
    def __init__(self, write: Callable[[list[A]], Awaitable[Sequence[R]]],
                 start: Callable[[Awaitable[None]], asyncio.Future[Any]]) -> None:
        """`write` commits a batch (all of it or nothing) and answers each unit's
        result, in the batch's order; `start` runs the writing as a task that
        the store's `settled` and `close` wait for."""
        self._write = write
        self._start = start
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        self._writing = False

    async def add(self, unit: A) -> R:
        """Write `unit` with whatever else is waiting; once committed, answer
        its result. A caller that goes away does not take its unit out of the
        batch."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieved)
        self._waiting.append((unit, done))
        if not self._writing:
            self._writing = True
            self._start(self._drain())
        return await asyncio.shield(done)

    async def _drain(self) -> None:
        batch: list[tuple[A, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._write([unit for unit, _ in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        batch[0][1].set_exception(exc)
                        continue
                    # One bad unit (or a deadlock) must not fail the others:
                    # each goes again on its own.
                    for unit, done in batch:
                        try:
                            [result] = await self._write([unit])
                        except Exception as alone:
                            done.set_exception(alone)
                        else:
                            done.set_result(result)
                    continue
                for (_, done), result in zip(batch, results, strict=True):
                    done.set_result(result)
        finally:
            self._writing = False
            for _, done in batch + self._waiting:  # cancelled: none of it is known written
                if not done.done():
                    done.set_exception(RuntimeError("the store stopped before this write"))
            self._waiting = []


def _retrieved(done: asyncio.Future[Any]) -> None:
    """A caller that went away never reads its unit's failure: read it here so
    that asyncio does not report it as never retrieved (the store logs)."""
    if not done.cancelled():
        done.exception()
