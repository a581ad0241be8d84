"""The outbound worker: sends queued messages through each number's provider.

Claims batches from the store with a lease (a crashed worker's claims come
back when the lease ends), paces each gateway number, retries transient
failures with exponential backoff and jitter, and fails permanent ones with
the provider's code and title kept.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping

from bot.providers.base import Provider, SendResult
from bot.runtime import Snapshot
from bot.store import OutboundRow, Store
from bot.workers.pacing import Pacer

log = logging.getLogger("wagate.outbound")

LEASE_SECONDS = 120.0
BATCH = 256
CONCURRENCY = 64


class OutboundWorker:
    def __init__(self, store: Store, snapshot: Callable[[], Snapshot],
                 providers: Mapping[str, Provider], *,
                 on_result: Callable[[OutboundRow, str, SendResult], None] | None = None) -> None:
        self.store = store
        self.snapshot = snapshot
        self.providers = providers
        self.wake = asyncio.Event()
        self.on_result = on_result
        self._pacers: dict[int, Pacer] = {}
        self._stopping = False
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self.running = False

    def notify(self) -> None:
        """New work was queued: skip the idle wait."""
        self.wake.set()

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    def _pacer(self, instance_id: int, rate: float) -> Pacer:
        pacer = self._pacers.get(instance_id)
        if pacer is None or pacer.rate != rate:
            pacer = self._pacers[instance_id] = Pacer(rate)
        return pacer

    async def run(self) -> None:
        self.running = True
        try:
            while not self._stopping:
                # Everything that touches the store is inside the try: one
                # failed query must not end the worker while the API keeps
                # accepting messages for it.
                try:
                    worked = await self.run_once()
                    if not worked and not self._stopping:
                        await self._idle()
                except Exception:  # the store hiccuped: log, breathe, go on
                    log.exception("outbound worker iteration failed")
                    await asyncio.sleep(1.0)
        finally:
            self.running = False

    async def _idle(self) -> None:
        # Clear first: a notify() that lands while we look at the queue still wakes us.
        self.wake.clear()
        due = await self.store.next_outbound_due()
        timeout = 5.0 if due is None else min(5.0, max(0.0, due - time.time()))
        if timeout > 0 and not self._stopping:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                pass

    async def run_once(self) -> bool:
        rows = await self.store.claim_outbound(time.time(), BATCH, LEASE_SECONDS)
        if not rows:
            return False
        await asyncio.gather(*(self._send(row) for row in rows))
        return True

    async def _send(self, row: OutboundRow) -> None:
        async with self._slots:
            if self._stopping:
                return  # shutting down: the claim is released, the next start sends it
            snap = self.snapshot()
            instance = snap.config.instances.get(row.instance_id)
            if instance is None:
                await self.store.mark_failed(row.id, None,
                                             f"instance {row.instance_id} is not configured",
                                             time.time())
                return
            provider = self.providers.get(instance.provider)
            if provider is None:
                await self.store.mark_failed(row.id, None, f"provider {instance.provider} "
                                             "is not available", time.time())
                return
            rate = instance.rate_per_second or snap.config.outbound.rate_per_second
            await self._pacer(instance.id, rate).acquire()
            if self._stopping:
                return
            media = await self.store.outbound_media(row.id) if row.type in (
                "image", "document") else None
            result = await provider.send(instance, row, media)
            now = time.time()
            outbound = snap.config.outbound
            if result.ok:
                assert result.provider_message_id is not None
                await self.store.mark_sent(row.id, result.provider_message_id, now)
                outcome = "sent"
            elif result.transient and row.attempts + 1 < outbound.max_attempts:
                delay = result.retry_after if result.retry_after is not None else min(
                    outbound.retry_max, outbound.retry_base * 2 ** row.attempts)
                delay *= random.uniform(1.0, 1.25)  # jitter: don't retry in lockstep
                await self.store.mark_retry(row.id, now + delay, result.error_code,
                                            result.error_title, now)
                outcome = "retry"
                log.info("message %s: transient error %s (%s), retry in %.1fs", row.id,
                         result.error_code, result.error_title, delay)
            else:
                await self.store.mark_failed(row.id, result.error_code, result.error_title, now)
                outcome = "failed"
                log.warning("message %s failed: %s %s", row.id, result.error_code,
                            result.error_title)
            if self.on_result is not None:
                self.on_result(row, outcome, result)
