"""Statuses a provider reports on its own after a delay (the sandbox's
`delivered` and `read`): each waits in a task of its own and then goes through
the pipeline as a provider's webhook would. Kept in memory only: a status still
waiting when the service stops is not reported, as a provider's lost webhook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from bot.events import StatusUpdate

log = logging.getLogger("wagate.outbound")


class LaterStatuses:
    def __init__(self, handle: Callable[[StatusUpdate], Awaitable[object]]) -> None:
        self._handle = handle
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, status: StatusUpdate, delay: float) -> None:
        task = asyncio.create_task(self._after(status, delay), name="later-status")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after(self, status: StatusUpdate, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._handle(status)
        except Exception:  # a store error: logged, like a provider webhook refused
            log.exception("status %s of %s not recorded", status.status,
                          status.provider_message_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
