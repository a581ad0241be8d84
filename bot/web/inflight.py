"""Requests in flight, counted so a shutdown can wait for them to finish."""

from __future__ import annotations

import asyncio


class InFlight:
    """How many requests are being handled; `draining` once the service stops."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()
