"""The outbound worker: sends queued messages through each number's provider.

Claims from the store with a lease, under its holder's id; a start releases
what a killed run had claimed (on SQLite every claim is a dead process's), so
nothing waits out a lease. Sends each message in a task of its own, paces
each gateway number, retries transient failures with exponential backoff and
jitter, and fails permanent ones with the provider's code and title kept.
Claiming goes on while messages are in flight, and a number holds at most
about two seconds' worth of its pace, so a slow or throttled number never
holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping

from bot.config.snapshot import Snapshot
from bot.effects import DeliveryDraft
from bot.events import StatusUpdate
from bot.forwarding.routing import route_status
from bot.kinds import Status
from bot.providers.base import Sender, SendResult, TransportMessage
from bot.store import OutboundRow
from bot.store.protocol import OutboundQueue
from bot.templates import TemplateUse
from bot.window import WindowFallback

log = logging.getLogger("wagate.outbound")

LEASE_SECONDS = 120.0
BATCH = 256
CONCURRENCY = 64  # provider calls at once
MAX_INFLIGHT = 1024  # messages held at once (sending, or waiting for their number's pace)


class OutboundWorker:
    def __init__(self, store: OutboundQueue, snapshot: Callable[[], Snapshot],
                 providers: Mapping[str, Sender], *, holder: str = "outbound",
                 on_result: Callable[[OutboundRow, str, SendResult], None] | None = None,
                 window: WindowFallback | None = None) -> None:
        self.store = store
        self.holder = holder  # the worker id its claims carry
        self.snapshot = snapshot
        self.providers = providers
        self.wake = asyncio.Event()
        self.on_result = on_result
        self.window = window  # "outside the window" answers: once more as the template
        self._stopping = False
        self._stopped = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._tasks: dict[str, asyncio.Task[None]] = {}  # message id -> its task
        self._held: dict[int, int] = {}  # messages held per instance
        self.running = False
        self._released = False  # a killed run's claims are released once, at start

    def notify(self) -> None:
        """New work was queued (the store's wake-up, `on_work`): skip the idle wait."""
        self.wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self.wake.set()

    async def drain(self, grace: float) -> None:
        """Nothing outlives `run`: the sends under way end inside it."""

    async def close(self) -> None:
        """Nothing to close: the providers' session is the app's."""

    async def run(self) -> None:
        self.running = True
        try:
            while not self._stopping:
                # Everything that touches the store is inside the try: one
                # failed query must not end the worker while the API keeps
                # accepting messages for it.
                try:
                    if not self._released:
                        await self._release_stale()
                        self._released = True
                    worked = await self.run_once()
                    if not worked and not self._stopping:
                        await self._idle()
                except Exception:  # the store hiccuped: log, breathe, go on
                    log.exception("outbound worker iteration failed")
                    await asyncio.sleep(1.0)
        finally:
            self.running = False
            tasks = list(self._tasks.values())
            try:
                if tasks:  # sends under way finish; the others return unsent
                    await asyncio.wait(tasks)
            except asyncio.CancelledError:
                for task in tasks:
                    task.cancel()
                raise

    async def _release_stale(self) -> None:
        """Claims a killed run left: due again now, not when their lease ends."""
        stale = await self.store.release_claims(
            None if self.store.single_process else self.holder)
        if stale:
            log.warning("%d messages claimed by a run that did not stop cleanly are queued "
                        "again; any it had handed to the provider unrecorded go out twice", stale)

    def _busy(self) -> list[int]:
        """The numbers holding as many messages as they may."""
        return [i for i, held in self._held.items() if held >= self._cap(i)]

    def _cap(self, instance_id: int) -> int:
        """How many messages one number may hold: about two seconds of its pace."""
        config = self.snapshot().config
        instance = config.instances.get(instance_id)
        rate = (instance.rate_per_second if instance else None) or config.outbound.rate_per_second
        return max(4, min(MAX_INFLIGHT, int(rate * 2)))

    async def _idle(self) -> None:
        # Clear first: a notify() that lands while we look at the queue still wakes us.
        self.wake.clear()
        timeout = 5.0
        if len(self._tasks) < MAX_INFLIGHT:
            # Not the numbers at their cap: their queue is due, but not ours to
            # claim until a send ends (which wakes us); counting it would spin.
            due = await self.store.next_outbound_due(self._busy())
            if due is not None:
                timeout = min(5.0, max(0.0, due - time.time()))
        if timeout > 0 and not self._stopping:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                pass

    async def run_once(self) -> bool:
        """Claim what is due (skipping numbers at their cap) and start sending it."""
        room = MAX_INFLIGHT - len(self._tasks)
        if room <= 0:
            return False
        rows = await self.store.claim_outbound(time.time(), min(room, BATCH), LEASE_SECONDS,
                                               self._busy(), self.holder)
        # One still ours (a lease outlived) is left be.
        taken = [row for row in rows if row.id not in self._tasks]
        delays = await self._book(taken)
        for row in taken:
            self._take(row, delays.get(row.id, 0.0))
        return bool(rows)

    async def _book(self, rows: list[OutboundRow]) -> dict[str, float]:
        """Each row's wait for its number's pace (the store keeps it, shared by
        every process that sends for the number), booked for the whole claim
        at once: one booking per number, not one per message."""
        config = self.snapshot().config
        by_instance: dict[int, list[OutboundRow]] = {}
        for row in rows:
            if row.instance_id in config.instances:
                by_instance.setdefault(row.instance_id, []).append(row)
        intervals = {instance_id: 1.0 / (config.instances[instance_id].rate_per_second
                                         or config.outbound.rate_per_second)
                     for instance_id in by_instance}
        firsts = await asyncio.gather(*(
            self.store.reserve_pace(instance_id, intervals[instance_id], len(group))
            for instance_id, group in by_instance.items()))
        return {row.id: first + k * intervals[instance_id]
                for (instance_id, group), first in zip(by_instance.items(), firsts, strict=True)
                for k, row in enumerate(group)}

    def _take(self, row: OutboundRow, delay: float) -> None:
        self._held[row.instance_id] = self._held.get(row.instance_id, 0) + 1
        task = asyncio.create_task(self._send(row, delay), name=f"outbound-{row.id}")
        self._tasks[row.id] = task
        task.add_done_callback(lambda t, r=row: self._done(r, t))

    def _done(self, row: OutboundRow, task: asyncio.Task[None]) -> None:
        self._tasks.pop(row.id, None)
        held = self._held.get(row.instance_id, 1) - 1
        if held > 0:
            self._held[row.instance_id] = held
        else:
            self._held.pop(row.instance_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("outbound message %s crashed", row.id, exc_info=task.exception())
        # Claim again only when capacity appears (a number dropped below its
        # cap, or the worker below its limit), not after every send.
        if held == self._cap(row.instance_id) - 1 or len(self._tasks) == MAX_INFLIGHT - 1:
            self.wake.set()

    async def _send(self, row: OutboundRow, delay: float) -> None:
        # Wait for this number's pace (booked by `_book`) before taking a
        # provider slot, so a slow number never holds slots the others need.
        if delay > 0:
            try:  # a stop ends the wait: the row stays queued for the next start
                await asyncio.wait_for(self._stopped.wait(), delay)
                return
            except TimeoutError:
                pass
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
            media = await self.store.outbound_media(row.id) if row.type in (
                "image", "document") else None
            result = await provider.send(instance, _transport(row, media))
            if not result.ok and self.window is not None:
                again = await self.window.after_send(row, result.error_code)
                if again is not None:
                    row = again
                    result = await provider.send(instance, _transport(row, media))
            now = time.time()
            outbound = snap.config.outbound
            if result.ok:
                assert result.provider_message_id is not None
                # From the provider's answer to this commit a crash sends the
                # message twice (no provider takes an idempotency key): the
                # mark goes ahead of queued work (see OutboundQueue.mark_sent).
                sent = _status_deliveries(snap, instance.provider, row, Status.SENT, now,
                                          provider_message_id=result.provider_message_id)
                await self.store.mark_sent(row.id, result.provider_message_id, now,
                                           keep_media=result.keep_media, deliveries=sent)
                outcome = "sent"
            elif result.transient and row.attempts + 1 < outbound.max_attempts:
                delay = result.retry_after if result.retry_after is not None else min(
                    outbound.retry_max, outbound.retry_base * 2 ** row.attempts)
                delay *= random.uniform(1.0, 1.25)  # jitter: don't retry in lockstep
                await self.store.mark_retry(row.id, now + delay, result.error_code,
                                            result.error_title, now)
                self.wake.set()  # the idle wait may be planned past this retry
                outcome = "retry"
                log.info("message %s: transient error %s (%s), retry in %.1fs", row.id,
                         result.error_code, result.error_title, delay)
            else:
                failed = _status_deliveries(snap, instance.provider, row, Status.FAILED, now,
                                            code=result.error_code, title=result.error_title)
                await self.store.mark_failed(row.id, result.error_code, result.error_title, now,
                                             deliveries=failed)
                outcome = "failed"
                log.warning("message %s failed: %s %s", row.id, result.error_code,
                            result.error_title)
            if self.on_result is not None:
                self.on_result(row, outcome, result)


def _status_deliveries(snap: Snapshot, provider: str, row: OutboundRow, status: Status,
                       now: float, *, provider_message_id: str = "", code: int | None = None,
                       title: str | None = None) -> list[DeliveryDraft]:
    """`message.status` for the subscriber that sent the message, raised by the
    provider's answer to the send, whichever the provider: `sent` when it takes
    the message (so a provider's own later "sent" changes nothing and tells
    nobody twice), `failed` with its code and title when it refuses it for good
    (a refused send has no provider message id)."""
    update = StatusUpdate(provider=provider, provider_message_id=provider_message_id,
                          instance_id=row.instance_id, status=status, error_code=code,
                          error_title=title, timestamp=now)
    return route_status(snap.config, update, row, now)


def _transport(row: OutboundRow, media: bytes | None) -> TransportMessage:
    return TransportMessage(
        id=row.id, to=row.to, group_id=row.group_id, kind=row.type, text=row.text,
        caption=row.caption, filename=row.filename, mime=row.mime, media=media,
        template=TemplateUse.from_json(row.template) if row.template else None)
