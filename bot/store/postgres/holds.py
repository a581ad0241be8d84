"""PostgreSQL: chats held from their state's read to their write, in batches.

A chat is held by a session-level advisory lock from reading its state to
committing what its message caused: two processes handling one chat's
messages decide one after the other. The reads of messages that arrive while
one batch of them is being read go together in the next (batches.py): one
connection, one call (wagate_chats_context, migration 0015), after which that
connection holds the batch's chats. Each chat's write goes on the connection
holding it, its lock passed from the session to the write's transaction
inside the write's statement (released first, the chat would be free to
another process's read of the state before the write); the writes of its
chats that arrive together go in one statement. The connection goes back to
the pool once every chat it held was written or let go.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import functools
import logging
from typing import Any

from bot.effects import Effects
from bot.store.postgres.batches import Batches
from bot.store.postgres.effects import PostgresEffects
from bot.store.postgres.pool import LOCK_CHAT, Conn, chat_key

# A chat held from its state's read to its commit is let go after this long:
# the message's handling hung (a failing one lets it go at once, `release_chat`).
CHAT_HOLD_TIMEOUT = 30.0

# Chats' states, each chat's lock taken first: tried only ($2 false), or waited for.
_READ = "SELECT * FROM wagate_chats_context($1, $2, $3, $4, $5, $6, $7, $8)"

log = logging.getLogger("wagate.store")

Key = tuple[int, str]  # (instance id, chat)


@dataclasses.dataclass(eq=False, slots=True)
class _Read:
    key: Key
    sender: str
    group_id: str | None
    user_id: str
    gone: bool = False  # its caller went away before the read was answered


@dataclasses.dataclass(eq=False, slots=True)
class Op:
    """What becomes of a held chat: its message's write, or (no effects) its release."""

    key: Key
    effects: Effects | None
    now: float = 0.0


@dataclasses.dataclass(slots=True)
class _Done:
    written: bool = False
    error: Exception | None = None


@dataclasses.dataclass(eq=False, slots=True)
class HeldConn:
    """A connection holding chats' session locks (no transaction open between
    its units); `ops` runs what becomes of them one batch after another (a
    connection runs one statement at a time)."""

    conn: Conn
    chats: int  # holds not yet written or let go
    ops: Batches[Op, _Done]
    unsure: bool = False  # a write failed: which locks it holds is not known


@dataclasses.dataclass(slots=True)
class HeldChat:
    held: HeldConn
    timer: asyncio.TimerHandle


def _columns(reads: list[_Read]) -> list[list[Any]]:
    """wagate_chats_context's arrays after the keys."""
    return [list(column) for column in zip(
        *((r.key[0], r.sender, r.key[1], r.group_id, r.user_id) for r in reads), strict=True)]


class ChatHolds(PostgresEffects, abc.ABC):
    """Chats held from their state's read to their write (see the module)."""

    @functools.cached_property
    def _held(self) -> dict[Key, HeldChat]:
        return {}

    @functools.cached_property
    def _reads(self) -> Batches[_Read, Any]:
        return Batches(self._read_chats, self._start)

    async def _hold(self, key: Key, sender: str, group_id: str | None, user_id: str) -> Any:
        """Hold the chat and read its state (a row of wagate_chats_context)."""
        await self._let_go(key)  # a message of this chat that never committed
        read = _Read(key, sender, group_id, user_id)
        try:
            row = await self._reads.add(read)
        except asyncio.CancelledError:
            read.gone = True
            self._start(self._let_go(key))  # held, if the read was answered
            raise
        if row is None:  # another process holds the chat: wait for it, alone
            row = await self._hold_alone(read)
        return row

    async def _read_chats(self, reads: list[_Read]) -> list[Any]:
        """A batch of reads: the chats whose lock was free, held on one
        connection, each with its state; None for the others."""
        # A chat read twice at once (its session lock, taken twice by one
        # connection, would not keep the two apart): the second reads alone.
        by_lock: dict[int, _Read] = {}
        for read in reads:
            by_lock.setdefault(chat_key(*read.key), read)
        first = list(by_lock.values())
        conn = await self._pool.acquire()
        try:
            rows = await conn.fetch(_READ, LOCK_CHAT, False, list(by_lock),
                                    *_columns(first))
        except BaseException:
            await self._unhold(conn)  # locks may have been granted
            raise
        got = {first[row[0] - 1]: row for row in rows}
        if got:
            held = self._held_conn(conn, len(got))
            for read in got:
                self._keep(held, read)
        else:
            await self._pool.release(conn)
        return [got.get(read) for read in reads]

    async def _hold_alone(self, read: _Read) -> Any:
        """Hold one chat on a connection of its own, waiting for its lock."""
        conn = await self._pool.acquire()
        try:
            row = await conn.fetchrow(_READ, LOCK_CHAT, True, [chat_key(*read.key)],
                                      *_columns([read]))
        except BaseException:
            await self._unhold(conn)
            raise
        self._keep(self._held_conn(conn, 1), read)
        return row

    def _held_conn(self, conn: Conn, chats: int) -> HeldConn:
        held = HeldConn(conn, chats, Batches(lambda ops: self._run(held, ops), self._start))
        return held

    def _keep(self, held: HeldConn, read: _Read) -> None:
        if read.gone:
            self._start(held.ops.add(Op(read.key, None)))
            return
        old = self._held.pop(read.key, None)
        if old is not None:  # the chat read twice at once: the first read's hold goes
            self._start(self._drop(read.key, old))
        timer = asyncio.get_running_loop().call_later(CHAT_HOLD_TIMEOUT, self._expire, read.key)
        self._held[read.key] = HeldChat(held, timer)

    def _expire(self, key: Key) -> None:
        log.warning("chat %s on instance %d held %gs without a commit: let go", key[1], key[0],
                    CHAT_HOLD_TIMEOUT)
        self._start(self._let_go(key))

    async def _let_go(self, key: Key) -> None:
        """Let a held chat go (its message never committed)."""
        chat = self._held.pop(key, None)
        if chat is not None:
            await self._drop(key, chat)

    async def _let_go_all(self) -> None:
        for key in list(self._held):
            await self._let_go(key)

    async def _drop(self, key: Key, chat: HeldChat) -> None:
        chat.timer.cancel()
        await chat.held.ops.add(Op(key, None))

    async def _write_held(self, key: Key, effects: Effects, now: float) -> bool | None:
        """Write a message on the connection holding its chat (None: not held)."""
        chat = self._held.pop(key, None)
        if chat is None:
            return None
        chat.timer.cancel()
        done = await chat.held.ops.add(Op(key, effects, now))
        if done.error is not None:
            raise done.error
        return done.written

    async def _run(self, held: HeldConn, ops: list[Op]) -> list[_Done]:
        """What became of some of a connection's chats, in one statement when
        they can go together (`_write_together`); each write that cannot, or
        whose batch failed, alone (`_write_alone`). A chat whose write failed
        is released; the connection goes back once it holds none."""
        done: dict[Op, _Done] = {}
        writes = [op for op in ops if op.effects is not None]
        together = [op for op in writes if op.effects is not None and self._fits(op.effects)]
        held.chats -= len(ops)
        try:
            if len(together) > 1:
                try:
                    answers = await self._write_together(held.conn, together)
                except Exception as exc:  # some one of them: each goes again alone
                    log.debug("a batch of %d inbound writes failed (%s): each goes alone",
                              len(together), exc)
                else:
                    done.update((op, _Done(written))
                                for op, written in zip(together, answers, strict=True))
            for op in writes:
                if op not in done:
                    assert op.effects is not None
                    try:
                        done[op] = _Done(await self._write_alone(held.conn, op.key, op.effects,
                                                                 op.now))
                    except Exception as exc:
                        done[op] = _Done(error=exc)
                        held.unsure = True
            loose = [op for op in ops if op not in done or done[op].error is not None]
            if held.chats == 0:
                if held.unsure or loose:
                    await self._unhold(held.conn)
                else:
                    await self._pool.release(held.conn)
            elif loose:
                await self._unlock(held, loose)
        except BaseException:
            # Cut short: the session's end frees its locks.
            held.conn.terminate()
            if held.chats == 0:
                with contextlib.suppress(Exception):  # if not given back already
                    await self._pool.release(held.conn)
            raise
        return [done.get(op, _Done()) for op in ops]

    async def _unlock(self, held: HeldConn, ops: list[Op]) -> None:
        """Release these chats of a connection that holds others; when that
        cannot be said, close it (every chat it holds is then free, their
        writes fail: their messages were not acknowledged)."""
        try:
            if held.conn.is_in_transaction():
                await held.conn.execute("ROLLBACK")
            await held.conn.execute("SELECT pg_advisory_unlock($1, k) FROM unnest($2::integer[])"
                                    " AS k", LOCK_CHAT, [chat_key(*op.key) for op in ops])
        except Exception:
            held.conn.terminate()

    # The writes, by inbound.py.
    @abc.abstractmethod
    def _fits(self, effects: Effects) -> bool:
        """These effects can go in a batch's one statement."""

    @abc.abstractmethod
    async def _write_together(self, conn: Conn, ops: list[Op]) -> list[bool]:
        """Write these in one statement, each chat's lock passed to it."""

    @abc.abstractmethod
    async def _write_alone(self, conn: Conn, key: Key, effects: Effects, now: float) -> bool:
        """Write one message on its own, its chat's lock passed to it."""
