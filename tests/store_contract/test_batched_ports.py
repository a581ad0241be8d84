"""The ports whose units a store may write together (group commit): what each
caller sees must be what it would see alone."""

from __future__ import annotations

import asyncio
import json

from bot.effects import DeliveryDraft, Effects, OutboundDraft, RegistrationWrite
from bot.events import InboundMessage, StatusUpdate
from bot.store import Store

ES = "+34600000001"
T0 = 1_000_000.0


async def test_a_batch_books_its_slots_at_once(store: Store) -> None:
    # A worker books a claimed batch of four in one call: the first slot is
    # now, and the next booking (this process's or another's) comes four
    # intervals later, not one.
    assert await store.reserve_pace(3, 1.0, 4) < 0.5
    assert 3.5 < await store.reserve_pace(3, 1.0) < 4.5
    assert 4.5 < await store.reserve_pace(3, 1.0, 2) < 5.5


async def test_sent_marks_made_at_once_each_land_as_alone(store: Store) -> None:
    # 30 sends answered at once (the worker's tasks do that under load): each
    # is sent once in its history, its media dropped unless kept, and a status
    # that came before its mark (parked) still wins over 'sent'.
    await store.enqueue([OutboundDraft(instance_id=1, to=ES, text=f"m{i}", media=b"\x89PNG")
                         for i in range(30)], T0)
    rows = await store.claim_outbound(T0, 30, 60)
    assert len(rows) == 30
    early = {rows[i].id for i in range(0, 30, 7)}
    for i in range(0, 30, 7):
        assert await store.apply_status(StatusUpdate(
            provider="meta", provider_message_id=f"wamid.b{i}", instance_id=1,
            status="read", timestamp=T0), T0) is None
    await asyncio.gather(*(store.mark_sent(row.id, f"wamid.b{i}", T0 + 1 + i,
                                           keep_media=i % 2 == 1)
                           for i, row in enumerate(rows)))
    for i, row in enumerate(rows):
        got = await store.get_outbound(row.id)
        assert got is not None
        assert (got.status, got.provider_message_id) == (
            "read" if row.id in early else "sent", f"wamid.b{i}")
        assert [e.status for e in await store.status_history(row.id)][:2] == [
            "queued", "sent"]
        kept = i % 2 == 1 and row.id not in early
        assert (await store.outbound_media(row.id) is not None) == kept
    assert await store.claim_outbound(T0 + 100, 30, 60) == []


# Values that SQL text must carry exactly: quotes, backslashes, what reads as a
# placeholder, array-literal syntax, a comment's start, far-off Unicode.
AWKWARD = "It's \\ back $1 $12 {x,y} \"q\" -- not; a comment ☃ 𝄞 \\x41 E'' NULL"


async def test_a_message_and_what_it_caused_keep_their_values_exactly(store: Store) -> None:
    msg = InboundMessage(provider="sandbox", provider_message_id="wamid.awk", instance_id=1,
                         sender=ES, text=AWKWARD, timestamp=T0 - 0.25)
    effects = Effects(inbound=msg, registration=RegistrationWrite(
        instance_id=1, number=ES, locale="es", status="active", keyword_subscriber=AWKWARD))
    effects.replies.append(OutboundDraft(instance_id=1, to=ES, text=AWKWARD,
                                         caption=None, media=b"\x00\\'\"{}"))
    effects.auto_reply_marks.append("any")
    effects.deliveries.append(DeliveryDraft(
        id="d-awk", subscriber_id="acme", endpoint_key="main", url="https://hooks.example/a",
        format="standard", event_type="message.received",
        payload=json.dumps({"text": AWKWARD, "n": -1.5})))
    assert await store.commit_inbound(effects, T0) is True
    [got] = await store.list_messages(direction="in", instance_id=1, number=ES, limit=10)
    assert got.text == AWKWARD
    [reg] = await store.registrations_of(ES)
    assert reg.keyword_subscriber == AWKWARD
    [out] = await store.claim_outbound(T0 + 1, 10, 60)
    assert out.text == AWKWARD
    assert await store.outbound_media(out.id) == b"\x00\\'\"{}"
    [dlv] = await store.list_deliveries(status="pending", subscriber_id="acme",
                                        endpoint_key="main", limit=10)
    assert json.loads(dlv.payload) == {"text": AWKWARD, "n": -1.5}
    assert await store.commit_inbound(effects, T0 + 2) is False  # stored once

