"""Context lookups read on the event loop's thread from a read-only connection:
they see every committed write at once."""

from __future__ import annotations

import asyncio
import sqlite3
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


async def test_a_lookup_does_not_wait_behind_a_waiting_write(tmp_path: Path) -> None:
    path = tmp_path / "wagate.db"
    store = await SqliteStore.open(str(path))
    # Another process holds the write lock (a CLI command, a backup tool):
    # the store's writer waits for it, its readers must not.
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        assert await store.commit_inbound(_hello("m1"), 1000.0)
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.ensure_future(store.commit_inbound(_hello("m2"), 1001.0))
        await asyncio.sleep(0.1)
        state = await store.load_inbound_context(1, "+34600000001", None)
        assert state.registration is not None
        assert not waiting.done(), "answered while the write still waited for the lock"
        other.execute("ROLLBACK")
        assert await waiting  # and the write goes through once the lock is free
    finally:
        other.close()
        await store.close()


async def test_a_temporary_database_reads_through_the_writer(tmp_path: Path) -> None:
    # "sqlite:///" names SQLite's private temporary database: a second
    # connection would open another, empty one.
    store = await SqliteStore.open("")
    try:
        assert await store.commit_inbound(_hello("m1"), 1000.0)
        state = await store.load_inbound_context(1, "+34600000001", None)
        assert state.registration is not None
    finally:
        await store.close()
