"""The webhook deliverer: sends queued deliveries to subscriber endpoints.

Deliveries are claimed from the store with a lease (a crashed worker's claims
come back when it ends; a restart releases them at once) and sent over one
keep-alive session whose resolver refuses non-public addresses, or to a message
broker (`bot/forwarding/destinations/`: one module per kind). Each endpoint
gets at most `max_concurrency_per_endpoint` requests at a time, and a slow or
dead endpoint never holds up the others: its deliveries are not claimed while
it is saturated. A broker takes the due deliveries of one endpoint as one
batch (published together, their acks awaited together, their attempts
recorded in one store write); an HTTP endpoint takes them one request at a
time. Every attempt is logged; failures retry on the configured
schedule (with jitter, or later when the endpoint says `Retry-After`); 410
disables the endpoint, and so does failing for `disable_after_days`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import time
from collections.abc import Callable, Sequence

import aiohttp

from bot.config import WebhookConfig, WebhooksConfig
from bot.config.snapshot import Snapshot
from bot.forwarding.destinations import check_destination, module_for
from bot.forwarding.destinations.base import Destination, Outcome, message_for
from bot.logs import url_for_log
from bot.store.models import AttemptOutcome, AttemptRow, DeliveryRow
from bot.store.protocol import DeliveryQueue
from bot.workers.lifecycle import finish
from bot.workers.media import MediaLinks
from bot.workers.yielding import ForegroundFirst

log = logging.getLogger("wagate.webhooks")

BATCH = 64  # deliveries per claim
MAX_INFLIGHT = 512  # deliveries held by this worker at once (sending or waiting a slot)

Endpoint = tuple[str, str]  # (subscriber id, endpoint key)


def lease_for(cfg: WebhooksConfig) -> float:
    """Long enough for a whole batch to queue behind one endpoint's slots."""
    rounds = math.ceil(BATCH / max(1, cfg.max_concurrency_per_endpoint)) + 2
    return cfg.timeout * rounds + 30.0


def _hook(snap: Snapshot, ep: Endpoint) -> WebhookConfig | None:
    """The endpoint as configured now (None: removed since its deliveries were queued)."""
    sub = snap.config.subscribers.get(ep[0])
    return next((h for h in sub.webhooks if h.key == ep[1]), None) if sub is not None else None


class WebhookWorker:
    def __init__(self, store: DeliveryQueue, snapshot: Callable[[], Snapshot],
                 session: aiohttp.ClientSession, *,
                 on_attempt: Callable[[str], None] | None = None,
                 gate: ForegroundFirst | None = None, holder: str = "webhooks",
                 on_delivered: Callable[[float], None] | None = None,
                 media: MediaLinks | None = None) -> None:
        self.store = store
        self.media = media  # completes the `media` of a message.received at each attempt
        self.on_delivered = on_delivered  # seconds from acceptance to delivery
        self.holder = holder  # the worker id its claims carry
        self.gate = gate or ForegroundFirst(lambda: False)
        self.snapshot = snapshot
        self.session = session
        self._destinations: dict[str, Destination] = {}  # by module: its connections
        self.on_attempt = on_attempt  # outcome: delivered|retry|failed|disabled|refused
        self.wake = asyncio.Event()
        self.running = False
        self._stopping = False
        self._tasks: dict[str, asyncio.Task[None]] = {}  # delivery id -> its task
        # Deliveries held per endpoint, until their request is answered (the
        # attempt's record is store work and does not load the endpoint).
        self._held: dict[Endpoint, int] = {}
        self._batch: dict[Endpoint, int] = {}  # deliveries its destination takes at once
        self._answered: set[str] = set()  # delivery ids no longer counted in _held
        self._slots: dict[Endpoint, tuple[int, asyncio.Semaphore]] = {}
        self._constrained = False  # the last claim left work behind for lack of room
        self._idle_until = 0.0
        self._released = False  # a killed run's claims are released once, at start

    def notify(self) -> None:
        """Deliveries were queued (the store's wake-up, `on_work`): skip the idle wait."""
        self.wake.set()

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def drain(self, grace: float) -> None:
        """After stop(): let attempts under way finish (bounded), cancel the rest;
        their claims stay for the store to release."""
        await finish(self._tasks.values(), grace)  # a batch's deliveries share one task

    # ------------------------------------------------------------- the loop

    async def run(self) -> None:
        self.running = True
        try:
            while not self._stopping:
                # Everything that touches the store is inside the try: one
                # failed query must not end the worker.
                try:
                    if not self._released:
                        # Claims left by a killed run come back now: on a store
                        # one process serves, every claim; else our own id's.
                        await self.store.release_delivery_claims(
                            None if self.store.single_process else self.holder)
                        self._released = True
                    claimed = await self._fill()
                    if not claimed and not self._stopping:
                        await self._idle()
                except Exception:  # the store hiccuped: log, breathe, go on
                    log.exception("webhook worker iteration failed")
                    await asyncio.sleep(1.0)
        finally:
            self.running = False

    def _cap(self, ep: Endpoint, cfg: WebhooksConfig) -> int:
        """Deliveries held for an endpoint before it is saturated: two rounds of
        its slots, each slot a request (HTTP) or a batch (a broker)."""
        return 2 * cfg.max_concurrency_per_endpoint * self._batch.get(ep, 1)

    def _saturated(self, cfg: WebhooksConfig) -> list[Endpoint]:
        return [ep for ep, held in self._held.items() if held >= self._cap(ep, cfg)]

    async def _fill(self) -> int:
        cfg = self.snapshot().config.webhooks
        now = time.time()
        # While requests are in flight, a few fresh deliveries; past them, what
        # has waited long enough (the gate's max_wait) goes regardless.
        room, due_by = self.gate.due_by(now, len(self._tasks), MAX_INFLIGHT)
        saturated = self._saturated(cfg)
        self._constrained = room <= 0 or bool(saturated) or due_by < now
        if room <= 0:
            return 0
        rows = await self.store.claim_deliveries(now, min(room, BATCH), lease_for(cfg),
                                                 saturated, self.holder, due_by)
        by_endpoint: dict[Endpoint, list[DeliveryRow]] = {}
        for row in rows:
            if row.id not in self._tasks:  # else still ours (a lease outlived): leave it be
                by_endpoint.setdefault((row.subscriber_id, row.endpoint_key), []).append(row)
        snap = self.snapshot()
        for ep, held in by_endpoint.items():
            size = self._batch[ep] = self._batch_size(snap, ep)
            for start in range(0, len(held), size):
                self._take(ep, held[start:start + size])
        return len(rows)

    def _batch_size(self, snap: Snapshot, ep: Endpoint) -> int:
        hook = _hook(snap, ep)
        allowed = snap.config.webhooks.allow_private_networks
        if hook is None or check_destination(hook.url, allowed) is not None:
            return 1  # each ends in its own failed attempt
        return self._destination(hook.url).batch

    def _take(self, ep: Endpoint, rows: list[DeliveryRow]) -> None:
        self._held[ep] = self._held.get(ep, 0) + len(rows)
        task = asyncio.create_task(self._deliver(ep, rows), name=f"webhook-{rows[0].id}")
        ids = [row.id for row in rows]
        for delivery_id in ids:
            self._tasks[delivery_id] = task
        task.add_done_callback(functools.partial(self._done, ids, ep))

    def _let_go(self, ids: Sequence[str], ep: Endpoint) -> None:
        """The deliveries no longer load their endpoint: room for the next ones."""
        self._answered.update(ids)
        before = self._held.get(ep, len(ids))
        held = before - len(ids)
        if held > 0:
            self._held[ep] = held
        else:
            self._held.pop(ep, None)
        # Only when this endpoint just dropped below its cap: waking on every
        # answer would re-run a claim that can only find the same nothing.
        cap = self._cap(ep, self.snapshot().config.webhooks)
        if self._constrained and held < cap <= before:
            self.wake.set()

    def _done(self, ids: list[str], ep: Endpoint, task: asyncio.Task[None]) -> None:
        for delivery_id in ids:
            self._tasks.pop(delivery_id, None)
        unanswered = [i for i in ids if i not in self._answered]
        if unanswered:  # ended before their answer (stopped, crashed)
            self._let_go(unanswered, ep)
        self._answered.difference_update(ids)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook deliveries %s crashed", ", ".join(ids),
                      exc_info=task.exception())
        # Room again: claim what was left behind while the worker is below its limit.
        if self._constrained and len(self._tasks) < self.gate.limit(MAX_INFLIGHT):
            self.wake.set()

    async def _idle(self) -> None:
        # Clear first: a notify() that lands while we look at the queue still wakes us.
        self.wake.clear()
        cfg = self.snapshot().config.webhooks
        timeout = 5.0
        if len(self._tasks) < MAX_INFLIGHT:
            due = await self.store.next_delivery_due(self._saturated(cfg))
            if due is not None:
                # Held back for requests, it goes once it has waited max_wait:
                # due_by is then that much before now.
                _, due_by = self.gate.due_by(time.time(), len(self._tasks), MAX_INFLIGHT)
                timeout = min(timeout, max(0.0, due - due_by))
        self._idle_until = time.time() + timeout
        if timeout > 0 and not self._stopping:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                pass
        self._idle_until = 0.0

    def _slot(self, ep: Endpoint, limit: int) -> asyncio.Semaphore:
        held = self._slots.get(ep)
        if held is None or held[0] != limit:  # new, or the limit was reloaded
            held = self._slots[ep] = (limit, asyncio.Semaphore(limit))
        return held[1]

    # ------------------------------------------------------------- one batch

    async def _deliver(self, ep: Endpoint, rows: list[DeliveryRow]) -> None:
        """Deliveries of one endpoint: one request (HTTP) or one batch (a broker)."""
        async with self._slot(ep, self.snapshot().config.webhooks.max_concurrency_per_endpoint):
            if self._stopping:
                return  # shutting down: the claims are released, the next start sends them
            snap = self.snapshot()
            cfg = snap.config.webhooks
            hook = _hook(snap, ep)
            started = time.time()
            t0 = time.perf_counter()
            endpoint_failure = True
            if hook is None:
                responses = [Outcome(error=f"endpoint {ep[1]} is no longer configured "
                                     f"for subscriber {ep[0]}")] * len(rows)
                endpoint_failure = False
            else:
                responses = await self._send(hook, rows, cfg)
            # A batch's attempts share its latency: they were answered together.
            latency = None if hook is None else round((time.perf_counter() - t0) * 1000.0, 2)
            now = time.time()
            results = []
            for row, response in zip(rows, responses, strict=True):
                outcome, next_at = self._decide(row, response, cfg, now, hook is None)
                results.append(AttemptOutcome(
                    attempt=AttemptRow(delivery_id=row.id, at=started, outcome=outcome,
                                       status_code=response.status, latency_ms=latency,
                                       response_body=response.body, error=response.error),
                    subscriber_id=row.subscriber_id, endpoint_key=row.endpoint_key,
                    url=row.url, next_attempt_at=next_at,
                    disable_after=cfg.disable_after_days * 86400.0,
                    endpoint_failure=endpoint_failure))
        # The slot covers the request only: the next one goes out while this is logged.
        self._let_go([row.id for row in rows], ep)
        recorded = await self.store.record_attempts(results, now)
        wake = False
        for row, result, response, (final, disabled) in zip(rows, results, responses, recorded,
                                                            strict=True):
            self._report(row, final, disabled, response, result.next_attempt_at)
            if final == "delivered" and self.on_delivered is not None:
                self.on_delivered(now - row.created_at)
            next_at = result.next_attempt_at
            wake = wake or (final == "retry" and next_at is not None
                            and next_at < self._idle_until)
        if wake:
            self.wake.set()  # due before the loop planned to look again

    async def _send(self, hook: WebhookConfig, rows: list[DeliveryRow],
                    cfg: WebhooksConfig) -> list[Outcome]:
        """One outcome per delivery; never raises."""
        why = check_destination(hook.url, cfg.allow_private_networks)
        if why:
            return [Outcome(error=why, refused=True)] * len(rows)
        try:
            messages = [message_for(hook, row.id, await self._payload(hook, row))
                        for row in rows]
            responses = await self._destination(hook.url).send_batch(hook, messages,
                                                                     cfg.timeout)
            if len(responses) != len(rows):
                raise RuntimeError(f"{len(responses)} outcomes for {len(rows)} deliveries")
        except Exception as exc:  # a bug here must still end in a logged attempt
            log.exception("webhook deliveries %s: unexpected error",
                          ", ".join(row.id for row in rows))
            return [Outcome(error=f"internal error: {type(exc).__name__}")] * len(rows)
        return responses

    @staticmethod
    def _decide(row: DeliveryRow, response: Outcome, cfg: WebhooksConfig, now: float,
                gone: bool) -> tuple[str, float | None]:
        if response.delivered:
            return "delivered", None
        if response.status == 410:
            return "disabled", None
        if response.refused:
            return "refused", None
        done = row.attempts + 1
        if gone or done >= len(cfg.retry_schedule):
            return "failed", None
        delay = cfg.retry_schedule[done] * random.uniform(1.0, 1.2)  # jitter
        if response.retry_after is not None:
            delay = max(delay, response.retry_after)
        return "retry", now + delay

    async def _payload(self, hook: WebhookConfig, row: DeliveryRow) -> str:
        """The stored payload, with its media's link filled in once the file is kept."""
        payload = row.payload
        if hook.format != "whatsmate" and self.media is not None \
                and row.event_type == "message.received" and '"media":{"id":"m' in payload:
            payload = await self.media.fill(payload)
        return payload

    def _destination(self, url: str) -> Destination:
        module = module_for(url)
        dest = self._destinations.get(module.__name__)
        if dest is None:
            dest = self._destinations[module.__name__] = module.create(
                self.session, lambda: self.snapshot().config.webhooks.allow_private_networks)
        return dest

    async def close(self) -> None:
        """After drain(): the destinations' connections (brokers) are closed."""
        for dest in self._destinations.values():
            try:
                await dest.close()
            except Exception as exc:  # closing a dead connection: nothing to keep
                log.debug("closing a webhook destination: %s", exc)
        self._destinations.clear()

    def _report(self, row: DeliveryRow, outcome: str, disabled: str | None,
                response: Outcome, next_at: float | None) -> None:
        if self.on_attempt is not None:
            self.on_attempt(outcome)
        if outcome == "delivered" and disabled is None and not log.isEnabledFor(logging.DEBUG):
            return  # the common case: nothing to log
        # The URL's query may hold a token: logged without it, also where an error quotes it.
        url = url_for_log(row.url)
        what = (response.error or (f"HTTP {response.status}" if response.status else "")
                ).replace(row.url, url)
        if outcome == "delivered":
            log.debug("webhook %s delivered to %s", row.id, url)
        elif outcome == "retry":
            log.info("webhook %s to %s: %s; retry in %.1fs", row.id, url, what,
                     (next_at or time.time()) - time.time())
        else:
            log.warning("webhook %s to %s %s: %s", row.id, url, outcome, what)
        if disabled is not None:
            log.warning("webhook endpoint %s (%s) of subscriber %s disabled: %s",
                        row.endpoint_key, url, row.subscriber_id, disabled.replace(row.url, url))
