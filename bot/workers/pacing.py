"""Per-gateway-number pacing: a steady rate, no bursts beyond it."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Hands out send slots `1/rate` seconds apart."""

    def __init__(self, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self._next = 0.0

    def reserve(self) -> float:
        """Book the next slot; how many seconds until it comes."""
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        return slot - now

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
