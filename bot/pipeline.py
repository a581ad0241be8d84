"""The inbound pipeline: normalized event -> handlers -> effects -> store.

Everything a message causes is committed in one transaction before the
transport's request is answered; workers are then woken to act on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.dispatch import Dispatcher
from bot.effects import Effects
from bot.events import InboundEvent, InboundMessage, StatusUpdate
from bot.runtime import SnapshotHolder
from bot.store import OutboundRow, Store

log = logging.getLogger("wagate.pipeline")


class Pipeline:
    def __init__(self, store: Store, holder: SnapshotHolder, dispatcher: Dispatcher,
                 on_committed: Callable[[Effects], None] | None = None,
                 on_status: Callable[[StatusUpdate, OutboundRow], None] | None = None) -> None:
        self.store = store
        self.holder = holder
        self.dispatcher = dispatcher
        self.on_committed = on_committed
        self.on_status = on_status

    async def handle(self, event: InboundEvent) -> bool:
        """Process one event; False when it was a redelivery (nothing changed)."""
        now = time.time()
        if isinstance(event, StatusUpdate):
            row = await self.store.apply_status(event, now)
            if row is not None and self.on_status is not None:
                self.on_status(event, row)
            return row is not None
        return await self._message(event, now)

    async def _message(self, msg: InboundMessage, now: float) -> bool:
        snap = self.holder.current
        if msg.instance_id not in snap.config.instances:
            raise KeyError(f"unknown instance {msg.instance_id}")
        state = await self.store.load_inbound_context(
            msg.instance_id, msg.sender, msg.group.id if msg.group else None)
        ctx = self.dispatcher.build_context(config=snap.config, locales=snap.locales, msg=msg,
                                            state=state, now=now)
        effects = await self.dispatcher.dispatch(ctx)
        fresh = await self.store.commit_inbound(effects, now)
        if not fresh:
            log.info("duplicate %s message %s ignored", msg.provider, msg.provider_message_id)
            return False
        log.info("inbound %s %s on instance %d from %s: %d repl%s queued", msg.kind,
                 msg.provider_message_id, msg.instance_id, msg.sender, len(effects.replies),
                 "y" if len(effects.replies) == 1 else "ies")
        if self.on_committed is not None:
            self.on_committed(effects)
        return True
