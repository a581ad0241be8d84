"""One lifecycle for the queue workers (outbound, media, webhooks): woken by
the store when work for their queue commits, run while the app lives, and at
shutdown stopped with what is under way finished (bounded by the server's
shutdown_timeout) and their claims released, so the next start takes the rest
at once instead of when the leases end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol

from bot.store.wakeups import Queue

log = logging.getLogger("wagate.workers")


class QueueWorker(Protocol):
    holder: str  # the worker id its claims carry

    def notify(self) -> None: ...

    def stop(self) -> None: ...

    async def run(self) -> None: ...

    async def drain(self, grace: float) -> None:
        """After stop(): let work under way finish within `grace`, cancel the rest."""
        ...

    async def close(self) -> None:
        """After drain(): close what the worker holds open (connections)."""
        ...


class WakeSource(Protocol):
    async def on_work(self, queue: Queue, wake: Callable[[], None]) -> None: ...


@contextlib.asynccontextmanager
async def running(store: WakeSource, queue: Queue, worker: QueueWorker,
                  grace: Callable[[], float],
                  release: Callable[[str], Awaitable[int]]) -> AsyncIterator[None]:
    """Run `worker` for the body's duration, woken by commits to `queue`;
    `release` frees its claims at the end (`grace()`: the shutdown timeout now)."""
    await store.on_work(queue, worker.notify)  # the one way it is woken
    task = asyncio.create_task(worker.run(), name=f"{queue}-worker")
    try:
        yield
    finally:
        worker.stop()
        try:
            await asyncio.wait_for(task, grace())
        except TimeoutError:
            log.warning("%s worker did not stop in time; its claims are released", queue)
        await worker.drain(grace())
        await worker.close()
        try:
            await release(worker.holder)
        except Exception as exc:  # the store is gone: the next start releases them
            log.warning("%s claims not released at shutdown: %s", queue, exc)


async def finish(tasks: Iterable[asyncio.Task[None]], grace: float) -> None:
    """A worker's drain: the tasks under way end within `grace`, the rest are
    cancelled (their claims stay, for the store to release)."""
    waiting = set(tasks)
    if waiting:
        _, pending = await asyncio.wait(waiting, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
