"""Per-gateway-number pacing: a steady rate, no bursts beyond it."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Hands out send slots `1/rate` seconds apart."""

    def __init__(self, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)
