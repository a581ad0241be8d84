"""The ports issue 21 added, the same assertions on each backend: provider
notices kept and listed, `played` after `read`, a status word added later
kept in the history only, and our own message ids found by the provider's."""

from __future__ import annotations

import json

from bot.effects import OutboundDraft
from bot.events import ProviderNotice, StatusUpdate
from bot.kinds import Status
from bot.store import Store

T0 = 1_000_000.0


async def _sent(store: Store, provider_id: str, instance: int = 1) -> str:
    await store.enqueue([OutboundDraft(instance_id=instance, to="+34600000001", text="hi")], T0)
    [row] = await store.claim_outbound(T0, 10, 60)
    await store.mark_sent(row.id, provider_id, T0 + 1)
    return row.id


async def test_notices_are_kept_and_listed_newest_first(store: Store) -> None:
    restricted = ProviderNotice(
        provider="meta", kind="account_update", instance_id=None, event="ACCOUNT_RESTRICTION",
        detail={"event": "ACCOUNT_RESTRICTION", "restriction_info": [
            {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1}]},
        timestamp=T0)
    paused = ProviderNotice(provider="meta", kind="message_template_status_update",
                            instance_id=2, event="PAUSED",
                            detail={"message_template_name": "wagate_notification"},
                            timestamp=0.0)
    session = ProviderNotice(provider="waha", kind="session.status", instance_id=3,
                             event="PASSKEY_REQUIRED", detail={"status": "PASSKEY_REQUIRED"},
                             timestamp=T0 + 2)
    for i, notice in enumerate((restricted, paused, session)):
        await store.record_notice(notice, T0 + 10 + i)
    rows = await store.list_notices()
    assert [(r.provider, r.kind, r.event, r.instance_id) for r in rows] == [
        ("waha", "session.status", "PASSKEY_REQUIRED", 3),
        ("meta", "message_template_status_update", "PAUSED", 2),
        ("meta", "account_update", "ACCOUNT_RESTRICTION", None)]
    assert json.loads(rows[2].detail) == restricted.detail
    assert rows[1].at == T0 + 11  # no provider time: when it arrived
    assert rows[0].at == T0 + 2 and rows[0].received_at == T0 + 12
    only = await store.list_notices(provider="meta", kind="account_update")
    assert [r.event for r in only] == ["ACCOUNT_RESTRICTION"]
    assert len(await store.list_notices(limit=1)) == 1


async def test_played_follows_read_and_a_later_word_changes_nothing(store: Store) -> None:
    row_id = await _sent(store, "wamid.p1")

    def update(status: Status, word: str | None = None) -> StatusUpdate:
        return StatusUpdate(provider="meta", provider_message_id="wamid.p1", instance_id=1,
                            status=status, word=word, timestamp=T0 + 5)
    assert await store.apply_status(update(Status.READ), T0 + 2) is not None
    played = await store.apply_status(update(Status.PLAYED), T0 + 3)
    assert played is not None and played.status == "played"
    assert await store.apply_status(update(Status.READ), T0 + 4) is None  # never back
    assert await store.apply_status(update(Status.UNKNOWN, "Deleted"), T0 + 5) is None
    row = await store.get_outbound(row_id)
    assert row is not None and row.status == "played"
    assert [e.status for e in await store.status_history(row_id)][-3:] == [
        "read", "played", "deleted"]
    # A later word for a message that is not ours is not parked for it either.
    assert await store.apply_status(StatusUpdate(
        provider="meta", provider_message_id="wamid.other", instance_id=1,
        status=Status.UNKNOWN, word="x", timestamp=T0), T0) is None
    later = await _sent(store, "wamid.other")
    assert (await store.get_outbound(later)).status == "sent"  # type: ignore[union-attr]


async def test_our_message_ids_by_the_providers(store: Store) -> None:
    ours = await _sent(store, "wamid.o1")
    assert await store.our_message_ids(1, ["wamid.o1", "wamid.nope", "wamid.o1"]) == {
        "wamid.o1": ours}
    assert await store.our_message_ids(2, ["wamid.o1"]) == {}
    assert await store.our_message_ids(1, []) == {}
