"""Context lookups read on the event loop's thread from a read-only connection:
they see every committed write at once."""

from __future__ import annotations

from pathlib import Path

from bot.effects import Effects, RegistrationWrite
from bot.events import InboundMessage
from bot.store import SqliteStore


def _hello(message_id: str) -> Effects:
    msg = InboundMessage(provider="sandbox", provider_message_id=message_id, instance_id=1,
                         sender="+34600000001", user_id=None, kind="text", text="Hola",
                         timestamp=0.0)
    return Effects(inbound=msg, registration=RegistrationWrite(
        instance_id=1, number="+34600000001", locale="es", status="active"))


async def test_a_committed_registration_is_seen_by_the_next_lookup(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "wagate.db"))
    try:
        before = await store.load_inbound_context(1, "+34600000001", None)
        assert before.registration is None
        assert await store.commit_inbound(_hello("m1"), 1000.0)
        after = await store.load_inbound_context(1, "+34600000001", None)
        assert after.registration is not None
        assert (after.registration.status, after.registration.locale) == ("active", "es")
    finally:
        await store.close()
