"""NOTIFY coalesced: at most one wake-up per queue per window from this process.

Every process's listener receives every NOTIFY (this process's own too), each
costs the server a signal and a message per listener and each listener a
callback and, often, a claim that finds nothing. This process's own workers
are woken by the store once the unit committed (bot/store/wakeups.py), and
ignore their own NOTIFYs heard back (the payload names the sender); the NOTIFY
is for the others, and one per window tells them as much as one per commit.

The first commit of a window carries its NOTIFY (delivered at its COMMIT);
commits that follow in the window send none, and once the window is over one
NOTIFY goes on its own, after them: no commit's work waits longer than the
window to be announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger("wagate.store")

WINDOW = 0.05  # seconds


class Wakes:
    def __init__(self, send: Callable[[str], Awaitable[object]],
                 start: Callable[[Awaitable[None]], object]) -> None:
        """`send` NOTIFYs one channel on its own; `start` runs that as a task
        the store's `settled` and `close` wait for."""
        self._send = send
        self._start = start
        self._last: dict[str, float] = {}  # channel -> loop time of its last NOTIFY
        self._trailing: dict[str, asyncio.TimerHandle] = {}

    def now(self, channels: Iterable[str]) -> list[str]:
        """Of the channels a commit filled, those whose NOTIFY goes with it (the
        others wait for `after`): the ones not notified within the window."""
        at = asyncio.get_running_loop().time()
        due = []
        for channel in channels:
            last = self._last.get(channel)
            if last is None or at - last >= WINDOW:
                self._last[channel] = at
                due.append(channel)
        return sorted(due)

    def after(self, channels: Iterable[str]) -> None:
        """The channels a commit filled but did not notify, once it committed:
        one NOTIFY each when their window ends."""
        loop = asyncio.get_running_loop()
        for channel in channels:
            if channel not in self._trailing:
                at = self._last.get(channel, loop.time()) + WINDOW
                self._trailing[channel] = loop.call_at(at, self._trail, channel)

    def _trail(self, channel: str) -> None:
        del self._trailing[channel]
        self._last[channel] = asyncio.get_running_loop().time()
        self._start(self._notify(channel))

    async def _notify(self, channel: str) -> None:
        # A lost NOTIFY costs the other processes' workers a poll, no more.
        with contextlib.suppress(Exception):
            await self._send(channel)

    async def flush(self) -> None:
        """Send the NOTIFYs still waiting for their window (the store closes)."""
        for channel in list(self._trailing):
            timer = self._trailing.pop(channel, None)
            if timer is None:  # its window ended while another was sent: it went
                continue
            timer.cancel()
            await self._notify(channel)
