"""A provider status that overtakes the send's own answer is not lost."""

from __future__ import annotations

import time
from pathlib import Path

from bot.effects import OutboundDraft
from bot.events import StatusUpdate
from bot.store import SqliteStore


def status(provider_id: str, value: str) -> StatusUpdate:
    return StatusUpdate(provider="meta", provider_message_id=provider_id, instance_id=2,
                        status=value, timestamp=time.time())


async def test_status_before_the_id_is_known_applies_once_it_is(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "wagate.db"))
    try:
        draft = OutboundDraft(instance_id=2, to="+34600000001", text="hi", subscriber_id="acme")
        await store.enqueue([draft], time.time())
        assert await store.apply_status(status("wamid.EARLY", "delivered"), time.time()) is None
        assert await store.apply_status(status("wamid.EARLY", "sent"), time.time()) is None
        await store.mark_sent(draft.id, "wamid.EARLY", time.time())
        row = await store.get_outbound(draft.id)
        assert row is not None and row.status == "delivered"
        # and the parked status is used up: a later "read" still moves it on
        got = await store.apply_status(status("wamid.EARLY", "read"), time.time())
        assert got is not None and got.status == "read"
    finally:
        await store.close()
