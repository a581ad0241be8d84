"""The inbound pipeline: normalized event -> handlers -> effects -> store.

Everything a message causes is committed in one transaction before the
transport's request is answered; the store then wakes the workers that act
on it (`Store.on_work`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.config import MediaConfig
from bot.config.snapshot import Snapshot, SnapshotHolder
from bot.dispatch import Dispatcher
from bot.effects import DeliveryDraft, Effects, MediaDraft
from bot.events import InboundEvent, InboundMessage, ProviderNotice, StatusUpdate
from bot.forwarding.routing import route_inbound, route_status
from bot.media_links import media_id_for
from bot.metrics import Metrics
from bot.store import InboundContext, OutboundRow
from bot.store.protocol import InboundStore
from bot.window import WindowFallback

log = logging.getLogger("wagate.pipeline")


class Pipeline:
    def __init__(self, store: InboundStore, holder: SnapshotHolder, dispatcher: Dispatcher,
                 on_status: Callable[[StatusUpdate, OutboundRow], None] | None = None,
                 metrics: Metrics | None = None,
                 window: WindowFallback | None = None,
                 on_notice: Callable[[ProviderNotice], None] | None = None) -> None:
        self.store = store
        self._chat_locks: dict[tuple[int, str], tuple[asyncio.Lock, int]] = {}
        self.holder = holder
        self.dispatcher = dispatcher
        self.on_status = on_status
        self.metrics = metrics
        # A failed status saying "outside the window": sent again as the
        # template (queued again) rather than failed.
        self.window = window
        self.on_notice = on_notice

    async def handle(self, event: InboundEvent, snapshot: Snapshot | None = None) -> bool:
        """Process one event; False when it was a redelivery (nothing changed).

        `snapshot` is the config the caller's request was pinned to; without it the
        one in force now is read, once."""
        now = time.time()
        if isinstance(event, ProviderNotice):
            return await self._notice(event, now)
        if isinstance(event, StatusUpdate):
            if self.metrics is not None:
                self.metrics.inbound_events.labels(event.provider, "status").inc()
                if event.status == "failed":
                    self.metrics.outbound_errors.labels(event.provider, str(
                        event.error_code) if event.error_code is not None else "none").inc()
            if self.window is not None and await self.window.after_status(event):
                return True
            config = self.holder.current.config

            def route(row: OutboundRow) -> list[DeliveryDraft]:
                return route_status(config, event, row, now)

            row = await self.store.apply_status(event, now, route)
            if row is not None and self.on_status is not None:
                self.on_status(event, row)
            return row is not None
        return await self._message(event, now, snapshot or self.holder.current)

    async def _notice(self, notice: ProviderNotice, now: float) -> bool:
        """A provider's word about the account: stored, counted and logged (never
        forwarded); the listeners act on it (a paused template, a restriction)."""
        await self.store.record_notice(notice, now)
        if self.on_notice is not None:
            self.on_notice(notice)
        if self.metrics is not None:
            self.metrics.provider_notices.labels(notice.provider, notice.kind).inc()
        log.info("%s notice %s%s on instance %s", notice.provider, notice.kind,
                 f" ({notice.event})" if notice.event else "", notice.instance_id)
        return True

    async def _message(self, msg: InboundMessage, now: float, snap: Snapshot) -> bool:
        if msg.instance_id not in snap.config.instances:
            raise KeyError(f"unknown instance {msg.instance_id}")
        # One message per chat at a time from reading its state to committing
        # what it caused: concurrent "Hola"s must not each see "unregistered"
        # and each send a confirmation (or each a hint).
        async with self.chats([(msg.instance_id, msg.chat)]):
            return await self._message_locked(msg, now, snap)

    def chats(self, keys: list[tuple[int, str]]) -> _ChatHold:
        """Hold these chats (instance id, chat) against every other change to
        their state made through here: inbound messages, an admin's opt-out."""
        return _ChatHold(self._chat_locks, keys)

    async def _our_ids(self, msg: InboundMessage) -> InboundMessage:
        """The messages a reply, reaction, edit or revoke names: one this gateway
        sent reads as the id the send API returned, any other keeps the
        provider's id with its prefix."""
        prefix = f"{msg.provider}:"
        refs = [r[len(prefix):] for r in _message_refs(msg) if r.startswith(prefix)]
        ours = await self.store.our_message_ids(msg.instance_id, refs) if refs else {}
        if not ours:
            return msg

        def swap(part: Any) -> Any:
            ref = part.get("message_id") if isinstance(part, dict) else None
            if not isinstance(ref, str) or ref[len(prefix):] not in ours:
                return part
            return {**part, "message_id": ours[ref[len(prefix):]]}
        return dataclasses.replace(
            msg, context=swap(dict(msg.context)) if msg.context else msg.context,
            details={key: swap(value) for key, value in msg.details.items()})

    async def _message_locked(self, msg: InboundMessage, now: float, snap: Snapshot) -> bool:
        msg = await self._our_ids(msg)
        state = await self.store.load_inbound_context(
            msg.instance_id, msg.sender, msg.group.id if msg.group else None, msg.user_id)
        chat = msg.chat  # held by the store until the commit
        try:
            reg = state.registration
            if reg is not None and msg.group is None and msg.sender == msg.user_id != reg.number:
                # Known by number, writing by user id only: still the number's registration.
                msg = dataclasses.replace(msg, sender=reg.number)
            ctx = self.dispatcher.build_context(config=snap.config, locales=snap.locales,
                                                msg=msg, state=state, now=now)
            effects = await self.dispatcher.dispatch(ctx)
            effects.media = media_draft(msg, snap.config.media, now)
            effects.deliveries = route_inbound(snap.config, effects, state, now)
        except BaseException:
            await self.store.release_chat(msg.instance_id, chat)
            raise
        try:
            fresh = await self.store.commit_inbound(effects, now)
        except asyncio.CancelledError:
            # The caller went away, but the queued write goes on: keep the chat
            # until it is in, or the next message would read the state before it.
            await self.store.settled()
            raise
        finally:
            if msg.chat != chat:  # committed under the number's chat: the one read goes
                await self.store.release_chat(msg.instance_id, chat)
        if not fresh:
            log.info("duplicate %s message %s ignored", msg.provider, msg.provider_message_id)
            if self.metrics is not None:
                self.metrics.inbound_duplicates.labels(msg.provider).inc()
            return False
        if self.metrics is not None:
            self._count(self.metrics, msg, state, effects)
        log.info("inbound %s %s on instance %d from %s: %d repl%s queued", msg.kind,
                 msg.provider_message_id, msg.instance_id, msg.sender, len(effects.replies),
                 "y" if len(effects.replies) == 1 else "ies")
        return True

    @staticmethod
    def _count(metrics: Metrics, msg: InboundMessage, state: InboundContext,
               effects: Effects) -> None:
        metrics.inbound_events.labels(msg.provider, msg.kind).inc()
        reg = effects.registration
        if reg is None:
            return
        before = state.registration
        if before is None or before.status != reg.status:
            event = "registered" if reg.status == "active" else "opted_out"
            metrics.registrations.labels(reg.locale, event).inc()


def media_draft(msg: InboundMessage, cfg: MediaConfig, now: float) -> MediaDraft | None:
    """The file a message carries, to fetch once it is stored (bot/workers/media.py)."""
    if msg.media is None:
        return None
    return MediaDraft(id=media_id_for(msg.provider, msg.provider_message_id),
                      provider=msg.provider, instance_id=msg.instance_id, kind=msg.kind,
                      provider_media_id=msg.media.id, source_url=msg.media.source_url,
                      mime_type=msg.media.mime_type, filename=msg.media.filename,
                      expires_at=now + cfg.retention_days * 86400)


def _message_refs(msg: InboundMessage) -> list[str]:
    """The message ids a message names: its context's, its reaction's, edit's or revoke's."""
    parts = [msg.context or {}, *msg.details.values()]
    return [p["message_id"] for p in parts
            if isinstance(p, Mapping) and isinstance(p.get("message_id"), str)]


class _ChatHold:
    """`async with` holding one or more chats' locks. Taken in sorted order,
    so two holders of several never deadlock; a lock is dropped from the
    table when its last holder or waiter is done (chats come and go)."""

    __slots__ = ("_keys", "_locks", "_table")

    def __init__(self, table: dict[tuple[int, str], tuple[asyncio.Lock, int]],
                 keys: list[tuple[int, str]]) -> None:
        self._table = table
        self._keys = sorted(set(keys))
        self._locks: list[asyncio.Lock] = []

    async def __aenter__(self) -> None:
        for key in self._keys:
            lock, waiting = self._table.get(key, (None, 0))
            if lock is None:
                lock = asyncio.Lock()
            self._table[key] = (lock, waiting + 1)
            try:
                await lock.acquire()
            except BaseException:
                self._let_go(key, held=False)
                self._release_held()
                raise
            self._locks.append(lock)

    async def __aexit__(self, *exc: object) -> None:
        self._release_held()

    def _release_held(self) -> None:
        for key, _ in zip(self._keys, self._locks, strict=False):
            self._let_go(key, held=True)
        self._locks.clear()

    def _let_go(self, key: tuple[int, str], *, held: bool) -> None:
        lock, waiting = self._table[key]
        if held:
            lock.release()
        if waiting <= 1:
            del self._table[key]
        else:
            self._table[key] = (lock, waiting - 1)
