"""One chat's messages handled by two processes on one PostgreSQL database:
they decide one after the other, each on the state the other left, and a
chat whose handling dies on the way (a failing handler, a hung one, a write
that fails, a killed connection) is free again for every process. A chat is
held by a session-level advisory lock from its state's read to its write
(bot/store/postgres/holds.py): none may outlive its unit, or that chat would
be blocked in every process for good. Messages arriving together are read in
one call on one connection, which then holds their chats, and written in one
statement: a redelivery or a failing message of such a batch costs the others
nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from bot.config import Config
from bot.config.snapshot import Snapshot, SnapshotHolder
from bot.dispatch import ANY, Context, Dispatcher, Router
from bot.effects import OutboundDraft
from bot.events import InboundMessage
from bot.locales import load_locales
from bot.pipeline import Pipeline
from bot.store.postgres import PostgresStore
from bot.store.postgres import holds as postgres_holds
from bot.store.postgres import inbound as postgres_inbound
from handlers import filters
from tests.store_contract.test_ports import DE, ES, T0, message, registered

# The advisory locks held in the test's database (the chats'); pg_locks shows
# every database's.
HELD = ("FROM pg_locks WHERE locktype = 'advisory'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
LOCKS = f"SELECT count(*) {HELD}"


@pytest.fixture
async def two(own_database: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    first = await PostgresStore.open(own_database, worker_id="host-a:1")
    second = await PostgresStore.open(own_database, worker_id="host-b:2")
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
async def admin(own_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(own_database)
    yield conn
    await conn.close()


async def free(store: PostgresStore, chat: str = ES) -> None:
    """The chat's next message goes through in `store` (were the chat still
    held elsewhere, its read would wait)."""
    await asyncio.wait_for(store.load_inbound_context(1, chat, None), 5)
    assert await store.commit_inbound(registered(message(sender=chat), reply=None), T0)


async def test_messages_of_one_chat_in_two_processes_decide_one_after_the_other(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    """Each message reads the chat's auto-reply mark and writes it one later, and
    the first one registers: decided on a stale state, a count would be lost or
    a second confirmation sent."""
    users = [f"+3466000{n:04d}" for n in range(8)]

    async def handle(store: PostgresStore, user: str) -> None:
        state = await store.load_inbound_context(1, user, None)
        await asyncio.sleep(0)  # the handlers run meanwhile
        if state.registration is None:
            effects = registered(message(sender=user))
        else:
            effects = registered(message(sender=user), reply="again")
        mark = T0 if state.last_auto_reply_at is None else state.last_auto_reply_at + 1
        assert await store.commit_inbound(effects, mark)

    await asyncio.gather(*(handle(two[n % 2], user) for n in range(6) for user in users))
    for user in users:
        texts = [r.text for r in await two[0].list_outbox(instance_id=1, to=user, limit=10)]
        assert sorted(texts) == ["again"] * 5 + ["registered"]
        state = await two[1].load_inbound_context(1, user, None)
        assert state.last_auto_reply_at == T0 + 5
        await two[1].commit_inbound(registered(message(sender=user), reply=None), T0)
    assert await admin.fetchval(LOCKS) == 0


async def test_a_handler_failing_between_read_and_commit_frees_the_chat(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    a, b = two
    await a.load_inbound_context(1, ES, None)  # its handler fails: no commit follows
    await a.load_inbound_context(1, ES, None)  # the chat's next message in a lets it go
    await a.commit_inbound(registered(message()), T0)
    await free(b)
    assert await admin.fetchval(LOCKS) == 0
    await a.load_inbound_context(1, DE, None)  # a handler fails, then a stops
    waiting = asyncio.create_task(free(b, DE))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # a holds the chat
    await a.close()
    await asyncio.wait_for(waiting, 5)
    assert await admin.fetchval(LOCKS) == 0


async def test_a_chat_held_too_long_is_let_go_everywhere(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres_holds, "CHAT_HOLD_TIMEOUT", 0.2)
    a, b = two
    await a.load_inbound_context(1, ES, None)
    await free(b)
    await a.settled()
    assert await admin.fetchval(LOCKS) == 0


async def test_a_killed_connection_frees_the_chat(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    """A process that dies between read and write (its connection cut) holds
    nothing: its session ends, and its lock with it."""
    a, b = two
    await a.load_inbound_context(1, ES, None)
    [holder] = await admin.fetch(f"SELECT pid {HELD}")
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", holder[0])
    await free(b)
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
        await a.commit_inbound(registered(message()), T0)  # its write finds no connection
    await free(a)  # and a goes on with a new one
    assert await admin.fetchval(LOCKS) == 0


async def test_a_failing_write_and_a_redelivery_free_the_chat(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    a, b = two
    taken = OutboundDraft(instance_id=1, to=DE, text="first")
    await b.enqueue([taken], T0)
    await a.load_inbound_context(1, ES, None)
    clash = registered(message())
    clash.replies[0] = dataclasses.replace(clash.replies[0], id=taken.id)  # a unique violation
    with pytest.raises(asyncpg.UniqueViolationError):
        await a.commit_inbound(clash, T0)  # fails after the chat was passed to it
    await free(b)
    await a.load_inbound_context(1, ES, None)
    with pytest.raises(asyncpg.PostgresError):  # fails before it runs: text cannot hold NUL
        await a.commit_inbound(registered(message(text="Ho\0la")), T0)
    await free(b)
    again = message()
    assert await a.commit_inbound(registered(again, reply=None), T0)
    await a.load_inbound_context(1, ES, None)
    assert not await a.commit_inbound(registered(again, reply=None), T0)  # a redelivery
    await free(b)
    assert await admin.fetchval(LOCKS) == 0


async def test_a_message_linking_a_user_id_holds_its_chat_to_the_commit(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    a, b = two
    by_id = dataclasses.replace(message(sender="U1"), user_id="U1")
    await a.commit_inbound(registered(by_id, reply=None), T0)  # a user known by id only
    state = await a.load_inbound_context(1, ES, None, "U1")
    assert state.registration is not None and state.registration.number == "U1"
    waiting = asyncio.create_task(b.load_inbound_context(1, ES, None, "U1"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    linked = dataclasses.replace(message(), user_id="U1")
    assert await a.commit_inbound(registered(linked, reply=None), T0 + 1)
    after = await asyncio.wait_for(waiting, 5)
    assert after.registration is not None and after.registration.number == ES
    assert after.registration.user_id == "U1"
    await b.commit_inbound(registered(message(), reply=None), T0 + 2)
    assert await admin.fetchval(LOCKS) == 0


async def test_an_opt_out_waits_for_a_message_of_the_chat_in_another_process(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    """A message's session lock and an opt-out's transaction lock on the chat
    exclude each other across processes, both ways."""
    a, b = two
    await a.load_inbound_context(1, ES, None)
    out = asyncio.create_task(b.opt_out(ES, [1], "es", T0 + 1))
    await asyncio.sleep(0.2)
    assert not out.done()
    assert await a.commit_inbound(registered(message()), T0)
    [(after, before)] = await asyncio.wait_for(out, 5)
    assert (before, after.status) == ("active", "opted_out")  # it saw the registration
    assert await admin.fetchval(LOCKS) == 0

    held = await admin.fetchval("SELECT pid FROM pg_stat_activity"
                                " WHERE pid = pg_backend_pid()")
    await admin.execute("BEGIN")
    await admin.execute("SELECT pg_advisory_xact_lock($1, $2)", postgres_inbound.LOCK_CHAT,
                        postgres_inbound.chat_key(1, ES))  # as opt_out holds it
    reading = asyncio.create_task(a.load_inbound_context(1, ES, None))
    await asyncio.sleep(0.2)
    assert not reading.done() and held
    await admin.execute("COMMIT")
    await asyncio.wait_for(reading, 5)
    await a.commit_inbound(registered(message(), reply=None), T0 + 2)
    assert await admin.fetchval(LOCKS) == 0


async def texts(store: PostgresStore, to: str) -> list[str | None]:
    return [r.text for r in await store.list_outbox(instance_id=1, to=to, limit=10)]


async def test_chats_arriving_together_are_read_in_one_call_and_written_in_one_statement(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    users = [f"+3467000{n:04d}" for n in range(12)]
    mine = [(two[n % 2], user) for n, user in enumerate(users)]
    states = await asyncio.gather(*(s.load_inbound_context(1, u, None) for s, u in mine))
    assert all(state.registration is None for state in states)
    # Each process holds its six chats on one connection.
    held = await admin.fetch(f"SELECT pid, count(*) {HELD} GROUP BY pid")
    assert sorted(n for _, n in held) == [6, 6]
    assert all(await asyncio.gather(*(
        s.commit_inbound(registered(message(sender=u)), T0) for s, u in mine)))
    # One transaction per process wrote its six messages and what they caused.
    for table in ("inbound", "registrations", "outbound", "auto_replies"):
        xmins = await admin.fetch(f"SELECT count(*) FROM {table} GROUP BY xmin::text")
        assert sorted(n for (n,) in xmins) == [6, 6], table
    for user in users:
        assert await texts(two[0], user) == ["registered"]
        state = await two[1].load_inbound_context(1, user, None)
        assert state.registration is not None and state.registration.status == "active"
        assert state.registration.last_inbound_at == T0 and state.last_auto_reply_at == T0
        await two[1].release_chat(1, user)
    assert await admin.fetchval(LOCKS) == 0


async def test_a_chat_held_elsewhere_holds_back_none_of_its_batch_and_decides_after(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    a, b = two
    await a.load_inbound_context(1, ES, None)  # a is handling a message of ES
    busy = asyncio.create_task(b.load_inbound_context(1, ES, None))
    others = [asyncio.create_task(b.load_inbound_context(1, user, None)) for user in (DE, "+1")]
    await asyncio.wait_for(asyncio.gather(*others), 5)
    await asyncio.sleep(0.2)
    assert not busy.done()
    assert await a.commit_inbound(registered(message()), T0)
    state = await asyncio.wait_for(busy, 5)
    assert state.registration is not None and state.last_auto_reply_at == T0  # after a's
    assert all(await asyncio.gather(*(
        b.commit_inbound(registered(message(sender=user), reply="again"), T0 + 1)
        for user in (ES, DE, "+1"))))
    assert sorted(await texts(a, ES)) == ["again", "registered"]
    assert await admin.fetchval(LOCKS) == 0


async def test_a_redelivery_and_a_failing_message_in_a_batch_cost_the_others_nothing(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    a, b = two
    users = ["+34671000001", "+34671000002", "+34671000003"]
    again = message(sender=users[0])
    assert await a.commit_inbound(registered(again, reply=None), T0)
    taken = OutboundDraft(instance_id=1, to=DE, text="first")
    await b.enqueue([taken], T0)
    for _ in range(2):  # twice: nothing of the first batch is left in the way
        await asyncio.gather(*(a.load_inbound_context(1, user, None) for user in users))
        clash = registered(message(sender=users[2]))
        clash.replies[0] = dataclasses.replace(clash.replies[0], id=taken.id)
        results = await asyncio.gather(
            a.commit_inbound(registered(again), T0 + 1),
            a.commit_inbound(registered(message(sender=users[1])), T0 + 1),
            a.commit_inbound(clash, T0 + 1), return_exceptions=True)
        assert results[:2] == [False, True]
        assert isinstance(results[2], asyncpg.UniqueViolationError)
        assert await admin.fetchval(LOCKS) == 0
        users[1] = "+34671000004"
    assert await texts(a, users[0]) == []  # the redelivery wrote nothing
    assert await texts(a, "+34671000002") == ["registered"]
    assert await texts(a, users[1]) == ["registered"]
    assert await texts(a, users[2]) == []
    for user in users:
        await free(b, user)
    assert await admin.fetchval(LOCKS) == 0


async def test_a_killed_connection_fails_its_batch_and_frees_its_chats(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection) -> None:
    a, b = two
    users = ["+34672000001", "+34672000002"]
    await asyncio.gather(*(a.load_inbound_context(1, user, None) for user in users))
    [holder] = await admin.fetch(f"SELECT DISTINCT pid {HELD}")
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", holder[0])
    for user in users:
        await free(b, user)
    results = await asyncio.gather(*(a.commit_inbound(registered(message(sender=user)), T0)
                                     for user in users), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)  # none acknowledged
    for user in users:
        assert await texts(b, user) == []
        await free(a, user)
    assert await admin.fetchval(LOCKS) == 0


async def test_a_handler_failing_lets_its_chat_go_at_once(
        two: tuple[PostgresStore, PostgresStore], admin: asyncpg.Connection,
        make_config: Callable[..., Config]) -> None:
    """Not after the hold's timeout (30 s): the pipeline lets it go."""
    a, b = two
    config = make_config()
    router = Router(name="failing")

    @router.message(ANY)
    async def fail(msg: InboundMessage, ctx: Context, _match: bool) -> None:
        raise RuntimeError("a handler's bug")

    pipeline = Pipeline(a, SnapshotHolder(Snapshot(config, load_locales(
        config.locales_dir, config.defaults.locale))), Dispatcher(
        [router], choose_locale=filters.answer_locale))
    with pytest.raises(RuntimeError):
        await pipeline.handle(message())
    await asyncio.wait_for(b.load_inbound_context(1, ES, None), 2)
    await b.release_chat(1, ES)
    assert await admin.fetchval(LOCKS) == 0
