"""PostgreSQL store over asyncpg: the `Store` protocol for several processes on
one database.

Each unit of work is one transaction on a pooled connection. What SQLite gets
from running units one after another on one connection, this store gets from
locks held in the database, so it holds across processes:
- queues are claimed with `FOR UPDATE SKIP LOCKED`, each claim naming its
  holder (`claimed_by`, this store's worker id) and its lease
  (`claimed_until`, also the row's `next_attempt_at`, so a dead process's
  claims come due when the lease ends); a start releases its own claims only;
- a chat's messages are serialized by an advisory lock on (instance, chat),
  held from reading the chat's state to committing what it caused;
- a send locks its subscriber's quota row, so a quota or recipient limit is
  checked and spent in one transaction, exact under any concurrency;
- statuses for one provider message id are serialized by an advisory lock.
Queuing work sends NOTIFY (`wagate_outbound`, `wagate_deliveries`) on commit;
`on_work` lets a worker be woken by any process's queuing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bot.effects import DeliveryDraft, Effects, OutboundDraft
from bot.events import StatusUpdate
from bot.store.models import (
    AttemptOutcome,
    AttemptRow,
    CostRow,
    DeliveryRow,
    EndpointRow,
    Fit,
    Group,
    InboundContext,
    InstanceActivity,
    MessageLogRow,
    OutboundRow,
    Registration,
    SendLimits,
    SendOutcome,
    SendUsage,
    StatusEvent,
)
from bot.store.protocol import StoreUnavailable
from bot.store.rows import (
    DELIVERY_COLUMNS,
    OUTBOUND_COLUMNS,
    OUTBOUND_FROM,
    REG_COLUMNS,
    delivery_row,
    like_escaped,
    outbound_row,
    registration_row,
)
from bot.store.rules import (
    EndpointHealth,
    QuotaPeriod,
    current_usage,
    endpoint_health,
    group_name_key,
    inbound_time,
    send_decision,
    status_advances,
    status_time,
)

T = TypeVar("T")
Conn = asyncpg.Connection  # a pooled connection (a proxy of one, to be exact)

log = logging.getLogger("wagate.store")

# Advisory lock namespaces (the first key of the two-key form): "wagm", "wagc", "wags".
LOCK_MIGRATE = 0x7761676D
LOCK_CHAT = 0x77616763
LOCK_STATUS = 0x77616773

CHANNELS = {"outbound": "wagate_outbound", "deliveries": "wagate_deliveries"}
Queue = Literal["outbound", "deliveries"]

_INSERT_INBOUND = ("INSERT INTO inbound (provider, provider_message_id, instance_id, sender,"
                   " user_id, group_id, kind, text, received_at) VALUES ({})"
                   " ON CONFLICT (provider, provider_message_id) DO NOTHING RETURNING seq")

# A delivery's last_error when its endpoint (`{0}`, a row of webhook_endpoints) is disabled.
_DISABLED_ERROR = "'endpoint disabled: ' || COALESCE(NULLIF({0}.disabled_reason, ''), 'disabled')"

# A chat held from its state's read to its commit is let go after this long:
# the message's handling failed between the two (the handlers are quick).
CHAT_HOLD_TIMEOUT = 30.0
EARLY_STATUS_AGE = 86400.0


def load_migrations() -> list[str]:
    """`pg_migrations/NNNN_name.sql`, applied in order; append-only, as for SQLite."""
    folder = Path(__file__).with_name("pg_migrations")
    return [path.read_text(encoding="utf-8")
            for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql"))]


MIGRATIONS = load_migrations()


def redacted(url: str) -> str:
    """The url without its password, fit for a message or a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def default_worker_id() -> str:
    """Host, process and a random part: unique among live processes, never reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _count(status: str) -> int:
    """Rows an INSERT/UPDATE/DELETE touched, from its command tag ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


def _where(first: int, **filters: Any) -> tuple[str, list[Any]]:
    """`column = $n` for each filter that is not None, ANDed, numbered from `first`."""
    used = {col: val for col, val in filters.items() if val is not None}
    clause = " AND ".join(f"{col.replace('__', '.')} = ${i}"
                          for i, col in enumerate(used, start=first)) or "TRUE"
    return clause, list(used.values())


_REG_OF_R = ", ".join(f"r.{column.strip()}" for column in REG_COLUMNS.split(","))
# A user's registration on an instance ($1) by number or user id ($2), the
# number's own row first (see SqliteStore's _REG_OF_USER).
_REG_OF_USER = (f"SELECT {REG_COLUMNS}, keyword_at FROM registrations"
                " WHERE instance_id = $1 AND (number = $2 OR user_id = $2)"
                " ORDER BY number = $2 DESC LIMIT 1")


# What claims hand out, selected from the claimed rows (`o`, a CTE) joined to
# their group as OUTBOUND_FROM joins it; and the columns that join needs.
_JOIN_GROUP = OUTBOUND_FROM.removeprefix("outbound o ")
_OUTBOUND_OWN = ", ".join(f"outbound.{column.strip().removeprefix('o.')}"
                          for column in OUTBOUND_COLUMNS.split(",")
                          if column.strip().startswith("o."))


class _Statement:
    """One statement of several steps (`WITH a AS (INSERT ...), b AS (...) ...`):
    writes that would each cost a round trip travel in one. Its parameters are
    numbered as they are added; every step sees the statement's one snapshot,
    so no two steps may touch the same row."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self._steps: list[str] = []
        self._named: dict[str, str] = {}

    def arg(self, value: Any, cast: str = "") -> str:
        """A parameter's placeholder; `cast` where nothing else gives its type
        (a value in a SELECT list)."""
        self.args.append(value)
        return f"${len(self.args)}" + (f"::{cast}" if cast else "")

    def once(self, name: str, value: Any, cast: str) -> str:
        """A parameter the steps share under `name`, added at its first use (one
        never used is an error: its type cannot be told)."""
        if name not in self._named:
            self._named[name] = self.arg(value, cast)
        return self._named[name]

    def step(self, name: str, sql: str) -> None:
        self._steps.append(f"{name} AS ({sql})")

    def sql(self, main: str) -> str:
        return (f"WITH {', '.join(self._steps)} " if self._steps else "") + main


def _literal(text: str) -> str:
    """`text` as an SQL string literal, for SQL sent without parameters (to travel
    with a BEGIN). An E'' string reads the same whatever the server's settings."""
    if "\0" in text:
        raise ValueError("a NUL character cannot be sent to PostgreSQL")
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _chat(group_id: str | None, sender: str) -> str:
    return f"group:{group_id}" if group_id is not None else sender


async def _keep_session(conn: Conn) -> None:
    """The pool's reset on release: nothing to send. asyncpg's default costs a
    round trip per unit (advisory unlock all, CLOSE ALL, UNLISTEN *, RESET ALL)
    for session state this store never leaves: its advisory locks are all
    transaction-level, it opens no cursors, it LISTENs on a connection of its
    own (not pooled) and SETs nothing. A transaction left open is still rolled
    back on release (asyncpg does that before calling this), as `_finish` and
    `_let_go` already do themselves."""


class _Rollback(Exception):
    """Raised inside a unit to undo all of it and answer `value` (a refused send)."""

    def __init__(self, value: Any) -> None:
        self.value = value


@dataclass(slots=True)
class _HeldChat:
    """A chat's transaction, open from its state's read to its commit."""

    conn: Conn
    timer: asyncio.TimerHandle


def chat_lock(instance_id: int, chat: str) -> str:
    """`SELECT pg_advisory_xact_lock(...)` for a chat, as literal SQL (two
    integers), so that it travels with the BEGIN in one round trip."""
    key = zlib.crc32(f"{instance_id}:{chat}".encode()) - 2**31  # an int4
    return f"SELECT pg_advisory_xact_lock({LOCK_CHAT}, {key})"


class PostgresStore:
    """The shared store. Every public method is one unit of work."""

    # Several processes serve one database: a claim found at start may be a
    # live process's; only this store's own (its worker id's) are released.
    single_process = False

    def __init__(self, pool: asyncpg.Pool, url: str, worker_id: str) -> None:
        self._pool = pool
        self._url = url
        self.worker_id = worker_id
        self._writes: set[asyncio.Future[Any]] = set()
        self._held: dict[tuple[int, str], _HeldChat] = {}
        # Queues a unit's transaction filled, per connection: their NOTIFY
        # goes with its COMMIT.
        self._wakes: dict[Conn, set[Queue]] = {}
        self._listener: asyncpg.Connection | None = None

    @classmethod
    async def open(cls, url: str, *, worker_id: str | None = None,
                   pool_size: int = 10) -> PostgresStore:
        """Connect (a pool of up to `pool_size`) and bring the schema up to date;
        processes starting at once migrate one after another."""
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size,
                                             reset=_keep_session)
        except (OSError, TimeoutError, asyncpg.PostgresError,
                asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"cannot open the PostgreSQL store at {redacted(url)}: "
                                   f"{exc}") from exc
        try:
            async with pool.acquire() as conn:
                await _migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url, worker_id or default_worker_id())

    async def settled(self) -> None:
        """Wait until every write unit started so far has committed (or failed)."""
        while self._writes:
            await asyncio.wait(set(self._writes))

    async def close(self) -> None:
        await self.settled()
        for key in list(self._held):
            await self._let_go(key)
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self._pool.close()

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def reserve_pace(self, instance_id: int, interval: float) -> float:
        """Book this number's next send slot, `interval` s after the last one booked
        by any process; how many seconds until it comes. A process that dies
        after booking only leaves a gap."""
        return float(await self._pool.fetchval(
            "WITH now AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS t)"
            " INSERT INTO pace AS p (instance_id, next_at) SELECT $1, now.t + $2 FROM now"
            " ON CONFLICT (instance_id) DO UPDATE"
            " SET next_at = GREATEST(p.next_at, (SELECT t FROM now)) + $2"
            " RETURNING next_at - $2 - (SELECT t FROM now)", instance_id, interval))

    async def on_work(self, queue: Queue, wake: Callable[[], None]) -> None:
        """Call `wake` whenever any process (this one too) commits work to `queue`.
        A wake-up may be lost (the listening connection dropped): workers still
        poll, this only cuts their latency."""
        if self._listener is None:
            self._listener = await asyncpg.connect(self._url)
        await self._listener.add_listener(CHANNELS[queue], lambda *_: wake())

    # A write unit runs as a task of its own: a caller that goes away (a
    # cancelled request) does not cancel it, as with SQLite's queued units.
    # Transactions are begun and ended by hand, so that what goes with BEGIN
    # (a chat's lock, a quota row's) and with COMMIT (NOTIFYs) costs no round
    # trip of its own, and a unit of one statement needs neither: on a busy
    # machine each round trip is what a unit mostly waits for (and most of
    # what it costs in CPU, here and in the server).

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]], begin: str = "BEGIN") -> T:
        async def unit() -> T:
            async with self._pool.acquire() as conn:
                await conn.execute(begin)
                return await self._finish(conn, fn)
        return await self._spawn(unit())

    async def _finish(self, conn: Conn, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `fn` in the transaction open on `conn`, then commit it, or roll it
        back if `fn` raised (a `_Rollback` answers its value)."""
        try:
            value = await fn(conn)
        except BaseException as exc:
            self._wakes.pop(conn, None)
            with contextlib.suppress(Exception):  # a broken connection: the pool drops it
                await conn.execute("ROLLBACK")
            if isinstance(exc, _Rollback):
                return exc.value
            raise
        wakes = self._wakes.pop(conn, set())
        await conn.execute("".join(f"SELECT pg_notify('{CHANNELS[queue]}', ''); "
                                   for queue in sorted(wakes)) + "COMMIT")
        return value

    def _start(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """Run `work` as a task that `settled` and `close` wait for."""
        task = asyncio.ensure_future(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

    async def _spawn(self, work: Awaitable[T]) -> T:
        return await asyncio.shield(self._start(work))

    async def _statement(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """A write unit of one statement, atomic by itself: it commits on its own
        (autocommit), without a BEGIN and a COMMIT round trip."""
        async def unit() -> T:
            async with self._pool.acquire() as conn:
                return await fn(conn)
        return await self._spawn(unit())

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        async with self._pool.acquire() as conn:
            return await fn(conn)

    def _notify(self, conn: Conn, queue: Queue) -> None:
        """Wake `queue`'s workers everywhere once this transaction commits."""
        self._wakes.setdefault(conn, set()).add(queue)

    # ------------------------------------------------------------- inbound

    async def _let_go(self, key: tuple[int, str]) -> None:
        """Roll back a chat's open transaction (its message never committed)."""
        held = self._held.pop(key, None)
        if held is None:
            return
        held.timer.cancel()
        try:
            with contextlib.suppress(Exception):  # a broken connection: the pool drops it
                await held.conn.execute("ROLLBACK")
        finally:
            await self._pool.release(held.conn)

    def _expire(self, key: tuple[int, str]) -> None:
        log.warning("chat %s on instance %d held %gs without a commit: let go", key[1], key[0],
                    CHAT_HOLD_TIMEOUT)
        self._start(self._let_go(key))

    async def load_inbound_context(self, instance_id: int, sender: str,
                                   group_id: str | None,
                                   user_id: str | None = None) -> InboundContext:
        """The chat's state, read inside the chat's transaction, which stays open
        (holding the chat against every other process) until `commit_inbound`
        for the chat commits in it: two processes handling one chat's messages
        at once decide one after the other, each on the state the other left."""
        key = (instance_id, _chat(group_id, sender))
        await self._let_go(key)  # a message of this chat that never committed
        conn = await self._pool.acquire()
        try:
            await conn.execute(f"BEGIN; {chat_lock(*key)}")
            state = await self._context(conn, instance_id, sender, group_id, user_id)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            await self._pool.release(conn)
            raise
        timer = asyncio.get_running_loop().call_later(CHAT_HOLD_TIMEOUT, self._expire, key)
        self._held[key] = _HeldChat(conn, timer)
        return state

    @staticmethod
    async def _context(conn: Conn, instance_id: int, sender: str, group_id: str | None,
                       user_id: str | None = None) -> InboundContext:
        """The registration (by number or user id), the group, the auto-reply
        marks and the last sender (see `_last_sender`), in one query: one round trip."""
        by, value = (("group_id", "$5") if group_id is not None
                     else ("to_number", "COALESCE(r.number, $5)"))
        n = len(REG_COLUMNS.split(","))  # where the columns after the registration's begin
        row = await conn.fetchrow(
            f"SELECT {_REG_OF_R}, r.keyword_at,"
            " (SELECT last_at FROM auto_replies WHERE instance_id = $1 AND number = $3"
            " AND kind = 'any'),"
            " (SELECT last_at FROM auto_replies WHERE instance_id = $1 AND number = $3"
            " AND kind = 'hint'),"
            " g.instance_id, g.group_id, g.name, g.registered_at,"
            " last.subscriber_id, last.created_at"
            " FROM (SELECT 1) AS one"
            " LEFT JOIN LATERAL (SELECT * FROM registrations WHERE instance_id = $1"
            " AND (number = $2 OR user_id = $6) ORDER BY number = $2 DESC LIMIT 1) AS r"
            " ON TRUE"
            " LEFT JOIN groups g ON g.instance_id = $1 AND g.group_id = $4"
            " LEFT JOIN LATERAL (SELECT subscriber_id, created_at FROM outbound"
            f" WHERE instance_id = $1 AND {by} = {value} AND subscriber_id IS NOT NULL"
            " ORDER BY created_at DESC LIMIT 1) AS last ON TRUE",
            instance_id, sender, _chat(group_id, sender), group_id,
            group_id if group_id is not None else sender, user_id or sender)
        registered = row[0] is not None
        return InboundContext(
            registration=registration_row(row) if registered else None,
            group=Group(instance_id=row[n + 3], group_id=row[n + 4], name=row[n + 5],
                        registered_at=row[n + 6]) if row[n + 3] is not None else None,
            last_auto_reply_at=row[n + 1], last_hint_at=row[n + 2],
            last_sender=(row[n + 7], row[n + 8]) if row[n + 7] is not None else None,
            keyword_at=row[n] if registered else None)

    async def commit_inbound(self, effects: Effects, now: float) -> bool:
        msg = effects.inbound
        key = (msg.instance_id, msg.chat)
        held = self._held.pop(key, None)
        if held is not None:
            held.timer.cancel()

        def write(conn: Conn) -> Awaitable[bool]:
            return self._write_inbound(conn, effects, now)

        if held is None:  # no state was read first: hold the chat now
            return await self._tx(write, begin=f"BEGIN; {chat_lock(*key)}")

        async def unit() -> bool:
            try:
                return await self._finish(held.conn, write)
            finally:
                await self._pool.release(held.conn)
        return await self._spawn(unit())

    async def _write_inbound(self, conn: Conn, effects: Effects, now: float) -> bool:
        """Write what a message caused in one statement (a few more when a user id
        is linked to its number), in the transaction open on `conn`; False for a
        redelivery, whose first delivery's effects stand."""
        msg = effects.inbound
        private = msg.group is None
        st = _Statement()
        inbound = (msg.provider, msg.provider_message_id, msg.instance_id, msg.sender,
                   msg.user_id, msg.group.id if msg.group else None, msg.kind, msg.text, now)
        if private and msg.user_id and msg.user_id != msg.sender:
            # Linking reads what it changes: it goes on its own, after the message.
            if await conn.fetchval(_INSERT_INBOUND.format(
                    ", ".join(f"${i}" for i in range(1, 10))), *inbound) is None:
                return False
            await self._link_user(conn, msg.instance_id, msg.sender, msg.user_id)
            fresh = gate = "TRUE"
        else:  # every write goes only if the message is new
            st.step("fresh", _INSERT_INBOUND.format(", ".join(map(st.arg, inbound))))
            fresh = gate = "EXISTS (SELECT 1 FROM fresh)"
        reg = effects.registration
        seen = st.arg(inbound_time(msg.timestamp, now), "float8") if private else None
        # The user's own message opens their window (never ours): on their
        # registration's row, written once (no two steps may touch one row).
        seen_by_upsert = seen is not None and reg is not None and reg.number == msg.sender
        if reg is not None:
            at = st.once("now", now, "float8")
            values = ", ".join([
                st.arg(reg.instance_id, "integer"), st.arg(reg.number, "text"),
                st.arg(reg.locale, "text"), st.arg(reg.status, "text"),
                st.arg(reg.keyword_subscriber, "text"), at, at,
                "NULL::float8" if reg.status == "active" else at,
                st.arg(msg.user_id if private else None, "text"),
                seen if seen_by_upsert else "NULL::float8",
                at if reg.keyword_subscriber else "NULL::float8"])
            st.step("reg", (
                f"INSERT INTO registrations ({REG_COLUMNS}, keyword_at)"
                f" SELECT {values} WHERE {gate}"
                " ON CONFLICT (instance_id, number) DO UPDATE SET locale = excluded.locale,"
                " status = excluded.status, updated_at = excluded.updated_at,"
                " user_id = COALESCE(excluded.user_id, registrations.user_id),"
                " keyword_subscriber = COALESCE(excluded.keyword_subscriber,"
                " registrations.keyword_subscriber),"
                " keyword_at = CASE WHEN excluded.keyword_subscriber IS NULL"
                " THEN registrations.keyword_at ELSE excluded.keyword_at END,"
                " registered_at = CASE WHEN registrations.status = 'active'"
                " THEN registrations.registered_at ELSE excluded.registered_at END,"
                # out since the first STOP, not the latest; back in clears it
                " opted_out_at = CASE WHEN excluded.status = 'active' THEN NULL"
                " WHEN registrations.status = 'opted_out'"
                " THEN COALESCE(registrations.opted_out_at, excluded.opted_out_at)"
                " ELSE excluded.opted_out_at END"
                + (", last_inbound_at = GREATEST(excluded.last_inbound_at,"
                   " COALESCE(registrations.last_inbound_at, 0))" if seen_by_upsert else "")))
        if seen is not None and not seen_by_upsert:
            st.step("seen", (
                f"UPDATE registrations SET last_inbound_at = GREATEST({seen},"
                f" COALESCE(last_inbound_at, 0)) WHERE instance_id = {st.arg(msg.instance_id)}"
                f" AND number = {st.arg(msg.sender)} AND {gate}"))
        if effects.group is not None:
            g = effects.group
            at = st.once("now", now, "float8")
            st.step("grp", (
                "INSERT INTO groups (instance_id, group_id, name, name_key, registered_at)"
                f" SELECT {st.arg(g.instance_id, 'integer')}, {st.arg(g.group_id, 'text')},"
                f" {st.arg(g.name, 'text')}, {st.arg(group_name_key(g.name), 'text')}, {at}"
                f" WHERE {gate} ON CONFLICT (instance_id, group_id) DO UPDATE SET"
                " name = excluded.name, name_key = excluded.name_key"))
        if effects.auto_reply_marks:
            kinds = list(dict.fromkeys(effects.auto_reply_marks))  # one row, one write
            at = st.once("now", now, "float8")
            st.step("marks", (
                "INSERT INTO auto_replies (instance_id, number, kind, last_at)"
                f" SELECT {st.arg(msg.instance_id, 'integer')}, {st.arg(msg.chat, 'text')},"
                f" kind, {at} FROM unnest({st.arg(kinds, 'text[]')}) AS kind WHERE {gate}"
                " ON CONFLICT (instance_id, number, kind)"
                " DO UPDATE SET last_at = excluded.last_at"))
        if effects.replies:
            self._add_outbound(st, effects.replies, now, gate)
        pending = (self._add_deliveries(st, effects.deliveries, now, gate)
                   if effects.deliveries else "0")
        written, queued = await conn.fetchrow(st.sql(f"SELECT {fresh}, {pending}"), *st.args)
        if not written:
            return False
        if effects.replies:
            self._notify(conn, "outbound")
        if queued:
            self._notify(conn, "deliveries")
        return True

    @staticmethod
    async def _link_user(conn: Conn, instance_id: int, number: str, user_id: str) -> None:
        """A message carrying both a number and a user id: the registration first
        known by the id becomes the number's (see SqliteStore._link_user)."""
        await conn.execute(
            "UPDATE registrations SET number = $2 WHERE instance_id = $1 AND number = $3"
            " AND NOT EXISTS (SELECT 1 FROM registrations WHERE instance_id = $1"
            " AND number = $2)", instance_id, number, user_id)
        gone = await conn.fetchval("DELETE FROM registrations WHERE instance_id = $1"
                                   " AND number = $2 RETURNING last_inbound_at",
                                   instance_id, user_id)
        await conn.execute(
            "UPDATE registrations SET user_id = $3, last_inbound_at = GREATEST("
            "COALESCE(last_inbound_at, 0), COALESCE($4, 0)) WHERE instance_id = $1"
            " AND number = $2", instance_id, number, user_id, gone)
        await conn.execute(
            "UPDATE send_recipients SET recipient = $1 WHERE recipient = $2 AND NOT EXISTS"
            " (SELECT 1 FROM send_recipients s WHERE s.subscriber_id ="
            " send_recipients.subscriber_id AND s.recipient = $1)", number, user_id)

    @staticmethod
    def _add_outbound(st: _Statement, drafts: Sequence[OutboundDraft], now: float,
                      gate: str = "TRUE") -> None:
        """Queue messages in `st` (if `gate`, an SQL condition, holds), in order,
        each with its history's first row."""
        at = st.once("now", now, "float8")
        types = ("text", "integer", "text", "text", "text", "text", "text", "text", "text",
                 "bytea", "text", "text")
        columns = zip(*((d.id, d.instance_id, d.to, d.group_id, d.type, d.text, d.caption,
                         d.filename, d.mime, d.media, d.subscriber_id, d.template)
                        for d in drafts), strict=True)
        arrays = ", ".join(st.arg(list(values), f"{kind}[]")
                           for values, kind in zip(columns, types, strict=True))
        names = ("id, instance_id, to_number, group_id, type, text, caption, filename, mime,"
                 " media, subscriber_id, template")
        st.step("out", (
            f"INSERT INTO outbound ({names}, status, next_attempt_at, created_at, updated_at)"
            f" SELECT {names}, 'queued', {at}, {at}, {at} FROM unnest({arrays})"
            f" WITH ORDINALITY AS d ({names}, ord) WHERE {gate} ORDER BY ord RETURNING id"))
        st.step("hist", "INSERT INTO outbound_history (message_id, at, status)"
                        f" SELECT id, {at}, 'queued' FROM out")

    async def _insert_outbound(self, conn: Conn, drafts: Sequence[OutboundDraft],
                               now: float) -> None:
        """Queue messages (see `_add_outbound`) in the transaction open on `conn`."""
        if not drafts:
            return
        st = _Statement()
        self._add_outbound(st, drafts, now)
        await conn.execute(st.sql("SELECT 1"), *st.args)
        self._notify(conn, "outbound")

    @staticmethod
    async def _record(conn: Conn, message_id: str, at: float, status: str,
                      code: int | None = None, title: str | None = None) -> None:
        """One row of a message's status history, in the caller's transaction."""
        await conn.execute("INSERT INTO outbound_history (message_id, at, status, error_code,"
                           " error_title) VALUES ($1, $2, $3, $4, $5)",
                           message_id, at, status, code, title)

    @staticmethod
    async def _lock_status(conn: Conn, provider_message_id: str) -> None:
        """Statuses of one provider message, and the send's record of its id,
        apply one after another: none is parked after its message's id landed."""
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_STATUS,
                           provider_message_id)

    async def apply_status(self, update: StatusUpdate, now: float,
                           route: Callable[[OutboundRow], list[DeliveryDraft]] | None = None
                           ) -> OutboundRow | None:
        async def unit(conn: Conn) -> OutboundRow | None:
            await self._lock_status(conn, update.provider_message_id)
            row = await conn.fetchrow("SELECT id, status FROM outbound"
                                      " WHERE provider_message_id = $1",
                                      update.provider_message_id)
            if row is None:
                # Maybe ours, before the send's answer recorded its id: park it
                # (the best status wins); parked ones of others age out in a day.
                early = await conn.fetchval("SELECT status FROM early_statuses"
                                            " WHERE provider_message_id = $1",
                                            update.provider_message_id)
                if early is None or status_advances(early, update.status):
                    await conn.execute(
                        "INSERT INTO early_statuses (provider_message_id, status, error_code,"
                        " error_title, received_at) VALUES ($1, $2, $3, $4, $5)"
                        " ON CONFLICT (provider_message_id) DO UPDATE SET"
                        " status = excluded.status, error_code = excluded.error_code,"
                        " error_title = excluded.error_title,"
                        " received_at = excluded.received_at",
                        update.provider_message_id, update.status, update.error_code,
                        update.error_title, now)
                await conn.execute("DELETE FROM early_statuses WHERE received_at < $1",
                                   now - EARLY_STATUS_AGE)
                return None
            # Media kept for a provider to fetch (mark_sent keep_media) are fetched
            # by the time it reports any status.
            await conn.execute("UPDATE outbound SET media = NULL WHERE id = $1"
                               " AND media IS NOT NULL", row[0])
            if update.pricing_category is not None:  # told with sent and delivered alike
                await conn.execute("UPDATE outbound SET pricing_category = $1, billable = $2"
                                   " WHERE id = $3", update.pricing_category,
                                   None if update.billable is None else int(update.billable),
                                   row[0])
            # Statuses arrive out of order; never move backwards (read -> delivered).
            if not status_advances(row[1], update.status):
                return None
            await conn.execute(
                "UPDATE outbound SET status = $1, error_code = COALESCE($2, error_code),"
                " error_title = COALESCE($3, error_title), updated_at = $4 WHERE id = $5",
                update.status, update.error_code, update.error_title, now, row[0])
            await self._record(conn, row[0], status_time(update, now), update.status,
                               update.error_code, update.error_title)
            got = outbound_row(await conn.fetchrow(
                f"SELECT {OUTBOUND_COLUMNS} FROM {OUTBOUND_FROM} WHERE o.id = $1", row[0]))
            if route is not None:  # webhook deliveries commit with the status they tell of
                await self._insert_deliveries(conn, route(got), now)
            return got
        return await self._tx(unit)

    # ------------------------------------------------------------- outbound queue

    async def enqueue(self, drafts: list[OutboundDraft], now: float) -> None:
        await self._tx(lambda conn: self._insert_outbound(conn, drafts, now))

    async def claim_outbound(self, now: float, limit: int, lease: float,
                             exclude_instances: Sequence[int] = (),
                             holder: str | None = None) -> list[OutboundRow]:
        """Up to `limit` due messages, leased to `holder` (this store's worker id
        by default) until `now + lease`: next_attempt_at moves to the lease's
        end, so a claim nobody finishes comes due again then. Rows another
        process is claiming are skipped, never waited for or handed out twice."""
        rows = await self._statement(lambda conn: conn.fetch(
            "WITH due AS (SELECT seq FROM outbound WHERE status = 'queued'"
            " AND next_attempt_at <= $1 AND instance_id <> ALL($2::integer[])"
            " ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),"
            " o AS (UPDATE outbound SET claimed_until = $4, claimed_by = $5, next_attempt_at = $4"
            f" FROM due WHERE outbound.seq = due.seq RETURNING outbound.seq, {_OUTBOUND_OWN})"
            f" SELECT {OUTBOUND_COLUMNS} FROM o {_JOIN_GROUP} ORDER BY o.seq",
            now, list(exclude_instances), limit, now + lease, holder or self.worker_id))
        return [outbound_row(r) for r in rows]

    async def outbound_media(self, message_id: str) -> bytes | None:
        return await self._pool.fetchval(
            "SELECT media FROM outbound WHERE id = $1", message_id)

    async def mark_sent(self, message_id: str, provider_message_id: str, now: float, *,
                        keep_media: bool = False) -> None:
        # One round trip: see pg_migrations/0005_mark_sent.sql.
        await self._statement(lambda conn: conn.execute(
            "SELECT wagate_mark_sent($1, $2, $3, $4, $5)", LOCK_STATUS, message_id,
            provider_message_id, now, keep_media))

    async def mark_retry(self, message_id: str, next_attempt_at: float, code: int | None,
                         title: str | None, now: float) -> None:
        await self._statement(lambda conn: conn.execute(
            "WITH retried AS (UPDATE outbound SET attempts = attempts + 1, next_attempt_at = $1,"
            " claimed_until = NULL, claimed_by = NULL, error_code = $2, error_title = $3,"
            " updated_at = $4 WHERE id = $5) INSERT INTO outbound_history (message_id, at,"
            " status, error_code, error_title) VALUES ($5, $4, 'retry', $2, $3)",
            next_attempt_at, code, title, now, message_id))

    async def mark_failed(self, message_id: str, code: int | None, title: str | None,
                          now: float) -> None:
        await self._statement(lambda conn: conn.execute(
            "WITH failed AS (UPDATE outbound SET status = 'failed', attempts = attempts + 1,"
            " claimed_until = NULL, claimed_by = NULL, error_code = $1, error_title = $2,"
            " media = NULL, updated_at = $3 WHERE id = $4) INSERT INTO outbound_history"
            " (message_id, at, status, error_code, error_title)"
            " VALUES ($4, $3, 'failed', $1, $2)", code, title, now, message_id))

    async def release_claims(self, holder: str | None = None) -> int:
        """`holder`'s claims (this store's worker id's by default): due again at
        once. Another process's claims are never touched: they come due when
        their lease ends. How many were released."""
        return await self._release("outbound", "queued", holder)

    async def _release(self, table: Literal["outbound", "webhook_deliveries"],
                       waiting: str, holder: str | None) -> int:
        status = await self._statement(lambda conn: conn.execute(
            f"UPDATE {table} SET claimed_until = NULL, claimed_by = NULL,"
            " next_attempt_at = LEAST(next_attempt_at, $1)"
            " WHERE status = $2 AND claimed_by = $3",
            time.time(), waiting, holder or self.worker_id))
        return _count(status)

    async def next_outbound_due(self, exclude_instances: Sequence[int] = ()) -> float | None:
        return await self._pool.fetchval(
            "SELECT MIN(next_attempt_at) FROM outbound WHERE status = 'queued'"
            " AND instance_id <> ALL($1::integer[])", list(exclude_instances))

    async def get_outbound(self, message_id: str) -> OutboundRow | None:
        row = await self._pool.fetchrow(
            f"SELECT {OUTBOUND_COLUMNS} FROM {OUTBOUND_FROM} WHERE o.id = $1", message_id)
        return outbound_row(row) if row else None

    async def status_history(self, message_id: str) -> list[StatusEvent]:
        rows = await self._pool.fetch(
            "SELECT at, status, error_code, error_title FROM outbound_history"
            " WHERE message_id = $1 ORDER BY seq", message_id)
        return [StatusEvent(at=r[0], status=r[1], error_code=r[2], error_title=r[3])
                for r in rows]

    async def list_outbox(self, *, instance_id: int | None, to: str | None,
                          limit: int) -> list[OutboundRow]:
        where, args = _where(1, o__instance_id=instance_id, o__to_number=to)
        rows = await self._pool.fetch(
            f"SELECT {OUTBOUND_COLUMNS} FROM {OUTBOUND_FROM} WHERE {where}"
            f" ORDER BY o.seq DESC LIMIT ${len(args) + 1}", *args, limit)
        return [outbound_row(r) for r in reversed(rows)]

    async def queue_depth(self) -> tuple[int, float | None]:
        row = await self._pool.fetchrow("SELECT COUNT(*), MIN(created_at) FROM outbound"
                                        " WHERE status = 'queued'")
        return row[0], row[1]

    # ------------------------------------------------------------- views

    async def list_registrations(self, *, instance_id: int | None, status: str | None,
                                 limit: int) -> list[Registration]:
        where, args = _where(1, instance_id=instance_id, status=status)
        rows = await self._pool.fetch(f"SELECT {REG_COLUMNS} FROM registrations WHERE {where}"
                                      f" ORDER BY registered_at LIMIT ${len(args) + 1}",
                                      *args, limit)
        return [registration_row(r) for r in rows]

    async def registrations_of(self, number: str) -> list[Registration]:
        rows = await self._pool.fetch(f"SELECT {REG_COLUMNS} FROM registrations"
                                      " WHERE number = $1 OR user_id = $1"
                                      " ORDER BY instance_id", number)
        return [registration_row(r) for r in rows]

    async def has_written(self, number: str) -> bool:
        return await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM inbound WHERE sender = $1)", number) is True

    async def find_group(self, instance_id: int, name: str) -> Group | None:
        row = await self._pool.fetchrow(
            "SELECT instance_id, group_id, name, registered_at FROM groups"
            " WHERE instance_id = $1 AND name_key = $2 ORDER BY registered_at DESC LIMIT 1",
            instance_id, group_name_key(name))
        return Group(instance_id=row[0], group_id=row[1], name=row[2],
                     registered_at=row[3]) if row else None

    async def list_messages(self, *, direction: str | None, instance_id: int | None,
                            number: str | None, limit: int) -> list[MessageLogRow]:
        parts: list[str] = []
        args: list[Any] = []
        if direction in (None, "in"):
            where, a = _where(len(args) + 1, instance_id=instance_id, sender=number)
            parts.append("SELECT 'in' AS direction, provider || ':' || provider_message_id,"
                         " instance_id, sender, group_id, kind, text, NULL::text,"
                         f" received_at FROM inbound WHERE {where}")
            args += a
        if direction in (None, "out"):
            where, a = _where(len(args) + 1, instance_id=instance_id, to_number=number)
            parts.append("SELECT 'out', id, instance_id, to_number, group_id, type,"
                         " COALESCE(text, caption), status, created_at FROM outbound"
                         f" WHERE {where}")
            args += a
        sql = " UNION ALL ".join(parts)
        rows = await self._pool.fetch(
            f"SELECT * FROM ({sql}) AS log ORDER BY 9 DESC, 1 DESC LIMIT ${len(args) + 1}",
            *args, limit)
        return [MessageLogRow(direction=r[0], id=r[1], instance_id=r[2], number=r[3],
                              group_id=r[4], type=r[5], text=r[6], status=r[7], at=r[8])
                for r in reversed(rows)]

    # ---- operations

    async def opt_out(self, number: str, instance_ids: Sequence[int], default_locale: str,
                      now: float,
                      route: Callable[[InboundContext], list[DeliveryDraft]] | None = None
                      ) -> list[tuple[Registration, str | None]]:
        """Opt a number out by hand on each instance (see SqliteStore.opt_out),
        holding each of its chats as a message of the chat would."""
        keys = sorted({(instance_id, number) for instance_id in instance_ids})
        for key in keys:  # a message of these chats that never committed
            await self._let_go(key)

        async def unit(conn: Conn) -> list[tuple[Registration, str | None]]:
            out = []
            for instance_id in instance_ids:
                row = await conn.fetchrow(_REG_OF_USER, instance_id, number)
                before = registration_row(row) if row else None
                key = before.number if before is not None else number
                if before is not None and before.active and route is not None:
                    state = InboundContext(
                        registration=before, group=None, last_auto_reply_at=None,
                        last_hint_at=None, keyword_at=row[len(REG_COLUMNS.split(","))],
                        last_sender=await self._last_sender(conn, instance_id, key, None))
                    await self._insert_deliveries(conn, route(state), now)
                if before is None or before.active:
                    await conn.execute(
                        "INSERT INTO registrations (instance_id, number, locale, status,"
                        " registered_at, updated_at, opted_out_at)"
                        " VALUES ($1, $2, $3, 'opted_out', $4, $4, $4)"
                        " ON CONFLICT (instance_id, number) DO UPDATE SET"
                        " status = 'opted_out', updated_at = excluded.updated_at,"
                        " opted_out_at = excluded.opted_out_at",
                        instance_id, key, default_locale, now)
                after = await conn.fetchrow(f"SELECT {REG_COLUMNS} FROM registrations"
                                            " WHERE instance_id = $1 AND number = $2",
                                            instance_id, key)
                out.append((registration_row(after), before.status if before else None))
            return out
        # The chats in order: two holders of several never deadlock.
        return await self._tx(unit, begin="; ".join(["BEGIN", *(chat_lock(*k) for k in keys)]))

    # ---- send API

    async def accept_send(self, draft: OutboundDraft, *, group_name: str | None,
                          limits: SendLimits, now: float,
                          fit: Fit | None = None) -> SendOutcome:
        """Check and queue one subscriber send as one transaction (see
        SqliteStore.accept_send). The subscriber's quota row is locked first
        (created when missing), so its sends run one after another whichever
        process takes them: no limit is ever exceeded. A refusal rolls back."""
        subscriber = draft.subscriber_id
        if subscriber is None:
            raise ValueError("a subscriber send needs draft.subscriber_id")

        # The upsert locks the row, with the BEGIN (so as literal SQL); a new one
        # (count 0, starting now) is the same to the rule as no period running.
        lock = ("BEGIN; INSERT INTO send_quota (subscriber_id, period_start, count)"
                f" VALUES ({_literal(subscriber)}, {float(now)!r}, 0)"
                " ON CONFLICT (subscriber_id) DO UPDATE SET count = send_quota.count")

        async def unit(conn: Conn) -> SendOutcome:
            queued = draft
            # What the rule needs is read after the lock, in one query: the
            # recipient (the group, or the registration), whether it is known and,
            # when not, how many recipients the subscriber has; the quota period.
            recipients = ("CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM send_recipients"
                          " WHERE subscriber_id = $3 AND recipient = {0}) AS known) AS k"
                          " CROSS JOIN (SELECT period_start, count FROM send_quota"
                          " WHERE subscriber_id = $3) AS q")
            total = ("CASE WHEN k.known THEN 0 ELSE (SELECT COUNT(*) FROM send_recipients"
                     " WHERE subscriber_id = $3) END, q.period_start, q.count")
            if group_name is not None:
                prefix = f"group:{draft.instance_id}:"
                found = await conn.fetchrow(
                    f"SELECT g.group_id, k.known, {total} FROM (SELECT group_id FROM groups"
                    " WHERE instance_id = $1 AND name_key = $2 ORDER BY registered_at DESC"
                    f" LIMIT 1) AS g {recipients.format('$4 || g.group_id')}",
                    draft.instance_id, group_name_key(group_name), subscriber, prefix)
                if found is None:
                    raise _Rollback(SendOutcome(status="unknown_group"))
                queued = dataclasses.replace(draft, to=None, group_id=found[0])
                recipient = prefix + found[0]
            else:
                found = await conn.fetchrow(
                    f"SELECT r.*, k.known, {total} FROM ({_REG_OF_USER}) AS r"
                    f" {recipients.format('r.number')}", draft.instance_id, draft.to, subscriber)
                reg = registration_row(found) if found else None
                if reg is None or not reg.active:
                    raise _Rollback(SendOutcome(status="not_registered"))
                queued = dataclasses.replace(draft, to=reg.number)  # a user id may name it
                if fit is not None:
                    fitted = fit(queued, reg)
                    if isinstance(fitted, SendOutcome):
                        raise _Rollback(fitted)
                    queued = fitted
                recipient = reg.number
            known, total_count, *period = found[-4:]
            decision = send_decision(QuotaPeriod(start=period[0], count=period[1]),
                                     known_recipient=known, recipients=total_count,
                                     limits=limits, now=now)
            if not decision.queued:
                raise _Rollback(decision)
            st = _Statement()  # every write, in one statement
            sub = st.arg(subscriber, "text")
            st.step("quota", f"UPDATE send_quota SET period_start ="
                             f" {st.arg(decision.period_start, 'float8')},"
                             f" count = {st.arg(decision.count, 'integer')}"
                             f" WHERE subscriber_id = {sub}")
            if not known:
                st.step("recipient", "INSERT INTO send_recipients (subscriber_id, recipient,"
                                     f" first_sent_at) VALUES ({sub}, {st.arg(recipient)},"
                                     f" {st.once('now', now, 'float8')})")
            self._add_outbound(st, [queued], now)
            await conn.execute(st.sql("SELECT 1"), *st.args)
            self._notify(conn, "outbound")
            return dataclasses.replace(decision, message_id=queued.id)
        return await self._tx(unit, begin=lock)

    async def resend_as_template(self, build: Callable[[OutboundRow, str | None, bool],
                                                       str | None], now: float, *,
                                 message_id: str | None = None,
                                 provider_message_id: str | None = None,
                                 requeue: bool = True) -> OutboundRow | None:
        """See SqliteStore.resend_as_template."""
        async def unit(conn: Conn) -> OutboundRow | None:
            key, value = (("o.id", message_id) if message_id is not None
                          else ("o.provider_message_id", provider_message_id))
            found = await conn.fetchrow(
                f"SELECT {OUTBOUND_COLUMNS}, o.media IS NOT NULL, r.locale FROM {OUTBOUND_FROM}"
                " LEFT JOIN registrations r ON r.instance_id = o.instance_id"
                f" AND r.number = o.to_number WHERE {key} = $1 FOR UPDATE OF o", value)
            if found is None or found[10] in ("failed", "delivered", "read"):
                return None
            template = build(outbound_row(found), found[-1], bool(found[-2]))
            if template is None:
                return None
            if requeue:
                await conn.execute(
                    "UPDATE outbound SET template = $1, status = 'queued',"
                    " provider_message_id = NULL, claimed_until = NULL, next_attempt_at = $2,"
                    " updated_at = $2 WHERE id = $3", template, now, found[0])
                self._notify(conn, "outbound")
            else:
                await conn.execute("UPDATE outbound SET template = $1, updated_at = $2"
                                   " WHERE id = $3", template, now, found[0])
            return outbound_row(await conn.fetchrow(
                f"SELECT {OUTBOUND_COLUMNS} FROM {OUTBOUND_FROM} WHERE o.id = $1", found[0]))
        return await self._tx(unit)

    async def costs(self) -> list[CostRow]:
        rows = await self._pool.fetch(
            "SELECT subscriber_id, pricing_category, billable, COUNT(*) FROM outbound"
            " WHERE pricing_category IS NOT NULL"
            " GROUP BY subscriber_id, pricing_category, billable"
            " ORDER BY subscriber_id NULLS FIRST, pricing_category, billable")
        return [CostRow(subscriber_id=r[0], category=r[1],
                        billable=None if r[2] is None else bool(r[2]), messages=r[3])
                for r in rows]

    async def send_usage(self, subscriber_id: str, period_seconds: float,
                         now: float) -> SendUsage:
        async def unit(conn: Conn) -> SendUsage:
            row = await conn.fetchrow("SELECT period_start, count FROM send_quota"
                                      " WHERE subscriber_id = $1", subscriber_id)
            recipients = await conn.fetchval("SELECT COUNT(*) FROM send_recipients"
                                             " WHERE subscriber_id = $1", subscriber_id)
            return current_usage(QuotaPeriod(start=row[0], count=row[1]) if row else None,
                                 recipients=recipients, period_seconds=period_seconds, now=now)
        return await self._read(unit)

    # ---- webhooks

    @staticmethod
    async def _last_sender(conn: Conn, instance_id: int, sender: str,
                           group_id: str | None) -> tuple[str, float] | None:
        """The subscriber that most recently sent to this chat (the number, or the
        group) on this instance, and when; auto-replies (no subscriber) don't count."""
        column, value = ("group_id", group_id) if group_id is not None else ("to_number", sender)
        row = await conn.fetchrow(
            f"SELECT subscriber_id, created_at FROM outbound WHERE instance_id = $1"
            f" AND {column} = $2 AND subscriber_id IS NOT NULL"
            " ORDER BY created_at DESC LIMIT 1", instance_id, value)
        return (row[0], row[1]) if row else None

    @staticmethod
    def _add_deliveries(st: _Statement, drafts: Sequence[DeliveryDraft], now: float,
                        gate: str = "TRUE") -> str:
        """Queue deliveries in `st` (if `gate`, an SQL condition, holds); those for a
        disabled endpoint are recorded failed at once (they can be replayed once
        the endpoint is enabled again). The count of pending ones, as SQL."""
        at = st.once("now", now, "float8")
        columns = zip(*((d.id, d.subscriber_id, d.endpoint_key, d.url, d.format, d.event_type,
                         d.payload) for d in drafts), strict=True)
        arrays = ", ".join(st.arg(list(values), "text[]") for values in columns)
        st.step("dlv", (
            "INSERT INTO webhook_deliveries (id, subscriber_id, endpoint_key, url, format,"
            " event_type, payload, status, next_attempt_at, last_error, created_at, updated_at)"
            " SELECT d.id, d.sub, d.key, d.url, d.format, d.event_type, d.payload,"
            f" CASE WHEN e.subscriber_id IS NULL THEN 'pending' ELSE 'failed' END, {at},"
            f" CASE WHEN e.subscriber_id IS NOT NULL THEN {_DISABLED_ERROR.format('e')} END,"
            f" {at}, {at} FROM unnest({arrays}) WITH ORDINALITY"
            " AS d (id, sub, key, url, format, event_type, payload, ord)"
            " LEFT JOIN webhook_endpoints e ON e.subscriber_id = d.sub"
            f" AND e.endpoint_key = d.key AND e.disabled_at IS NOT NULL WHERE {gate}"
            " ORDER BY d.ord RETURNING status"))
        return "(SELECT COUNT(*) FROM dlv WHERE status = 'pending')"

    async def _insert_deliveries(self, conn: Conn, drafts: Sequence[DeliveryDraft],
                                 now: float) -> None:
        """Queue deliveries (see `_add_deliveries`) in the transaction open on `conn`."""
        if not drafts:
            return
        st = _Statement()
        pending = self._add_deliveries(st, drafts, now)
        if await conn.fetchval(st.sql(f"SELECT {pending}"), *st.args):
            self._notify(conn, "deliveries")

    async def add_deliveries(self, drafts: Sequence[DeliveryDraft], now: float) -> None:
        await self._tx(lambda conn: self._insert_deliveries(conn, drafts, now))

    async def claim_deliveries(self, now: float, limit: int, lease: float,
                               exclude: Sequence[tuple[str, str]] = (),
                               holder: str | None = None,
                               due_by: float | None = None) -> list[DeliveryRow]:
        """Up to `limit` deliveries due by `due_by` (default `now`), leased to
        `holder` (this store's worker id by default) until `now + lease`,
        skipping the (subscriber, endpoint) pairs in `exclude` and rows another
        process is claiming. Due deliveries of a disabled endpoint are failed
        instead of handed out."""
        # The rows as they were before the claim (its lease is not theirs to show).
        rows = await self._statement(lambda conn: conn.fetch(
            f"WITH due AS (SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"
            " WHERE status = 'pending' AND next_attempt_at <= $1 AND NOT EXISTS (SELECT 1 FROM"
            " unnest($2::text[], $3::text[]) AS busy (subscriber_id, endpoint_key)"
            " WHERE busy.subscriber_id = webhook_deliveries.subscriber_id"
            " AND busy.endpoint_key = webhook_deliveries.endpoint_key)"
            " ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED),"
            " checked AS (SELECT due.*, e.disabled_reason, e.subscriber_id IS NOT NULL AS dead"
            " FROM due LEFT JOIN webhook_endpoints e ON e.subscriber_id = due.subscriber_id"
            " AND e.endpoint_key = due.endpoint_key AND e.disabled_at IS NOT NULL),"
            " failed AS (UPDATE webhook_deliveries d SET status = 'failed', last_error ="
            f" {_DISABLED_ERROR.format('c')}, claimed_until = NULL, claimed_by = NULL,"
            " updated_at = $5 FROM checked c WHERE d.id = c.id AND c.dead),"
            " claimed AS (UPDATE webhook_deliveries d SET claimed_until = $6, claimed_by = $7,"
            " next_attempt_at = $6 FROM checked c WHERE d.id = c.id AND NOT c.dead)"
            f" SELECT {DELIVERY_COLUMNS} FROM checked WHERE NOT dead ORDER BY next_attempt_at",
            now if due_by is None else due_by, [s for s, _ in exclude],
            [e for _, e in exclude], limit, now, now + lease, holder or self.worker_id))
        return [delivery_row(r) for r in rows]

    async def record_attempt(self, result: AttemptOutcome, now: float) -> tuple[str, str | None]:
        """Log one attempt and apply what follows from it (see
        SqliteStore.record_attempt), in two statements and no transaction: the
        endpoint's health is read, then every write goes in one statement that
        first locks the endpoint's row if its health is still what was read
        (else nothing is written, and it starts over). So attempts recorded at
        once by several processes update its health one after another, as if
        the row were locked from the read, without a BEGIN and a COMMIT."""
        a = result.attempt
        ep = (result.subscriber_id, result.endpoint_key)
        status = {"delivered": "delivered", "retry": "pending"}

        async def record(conn: Conn) -> tuple[str, str | None] | None:
            read = ("SELECT failing_since, disabled_at, last_success_at, url FROM webhook_endpoints"
                    " WHERE subscriber_id = $1 AND endpoint_key = $2")
            found = await conn.fetchrow(read, *ep)
            if found is None:  # the endpoint's first attempt
                await conn.execute("INSERT INTO webhook_endpoints (subscriber_id, endpoint_key,"
                                   " url) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                                   *ep, result.url)
                found = await conn.fetchrow(read, *ep)
            change = endpoint_health(
                EndpointHealth(failing_since=found[0], disabled_at=found[1],
                               last_success_at=found[2]),
                outcome=a.outcome, endpoint_failure=result.endpoint_failure, at=a.at,
                disable_after=result.disable_after)
            outcome, disabled_now = change.outcome, change.disable
            st = _Statement()
            endpoint = (f"subscriber_id = {st.arg(ep[0], 'text')}"
                        f" AND endpoint_key = {st.arg(ep[1], 'text')}")
            st.step("current", (
                f"SELECT 1 FROM webhook_endpoints WHERE {endpoint}"
                f" AND failing_since IS NOT DISTINCT FROM {st.arg(found[0], 'float8')}"
                f" AND disabled_at IS NOT DISTINCT FROM {st.arg(found[1], 'float8')}"
                f" AND last_success_at IS NOT DISTINCT FROM {st.arg(found[2], 'float8')}"
                f" AND url = {st.arg(found[3], 'text')} FOR UPDATE"))
            gate = "EXISTS (SELECT 1 FROM current)"
            at = st.arg(now, "float8")
            health = []
            if found[3] != result.url:
                health.append(f"url = {st.arg(result.url, 'text')}")
            if change.success_at is not None:
                health.append("failing_since = NULL,"
                              f" last_success_at = {st.arg(change.success_at, 'float8')}")
            if change.failing_since is not None:
                health.append(f"failing_since = {st.arg(change.failing_since, 'float8')},"
                              f" last_failure_at = {st.arg(a.at, 'float8')}")
            if disabled_now is not None:
                health.append(f"disabled_at = {at},"
                              f" disabled_reason = {st.arg(disabled_now, 'text')}")
            if health:
                st.step("health", f"UPDATE webhook_endpoints SET {', '.join(health)}"
                                  f" WHERE {endpoint} AND {gate}")
            delivery = st.arg(a.delivery_id, "text")
            if disabled_now is not None:
                st.step("others", (
                    "UPDATE webhook_deliveries SET status = 'failed', last_error ="
                    f" {st.arg(f'endpoint disabled: {disabled_now}', 'text')},"
                    f" claimed_until = NULL, claimed_by = NULL, updated_at = {at}"
                    f" WHERE {endpoint} AND status = 'pending' AND id <> {delivery}"
                    f" AND (claimed_until IS NULL OR claimed_until < {at}) AND {gate}"))
            st.step("attempt", (
                "INSERT INTO webhook_attempts (delivery_id, at, outcome, status_code,"
                f" latency_ms, response_body, error) SELECT {delivery},"
                f" {st.arg(a.at, 'float8')}, {st.arg(outcome, 'text')},"
                f" {st.arg(a.status_code, 'integer')}, {st.arg(a.latency_ms, 'float8')},"
                f" {st.arg(a.response_body, 'text')}, {st.arg(a.error, 'text')} WHERE {gate}"))
            final = status.get(outcome, "failed")
            changes = [f"status = {st.arg(final, 'text')}", "attempts = attempts + 1",
                       "claimed_until = NULL", "claimed_by = NULL",
                       f"last_status_code = {st.arg(a.status_code, 'integer')}",
                       f"last_error = {st.arg(a.error, 'text')}", f"updated_at = {at}"]
            if final == "pending" and result.next_attempt_at is not None:
                changes.append(f"next_attempt_at = {st.arg(result.next_attempt_at, 'float8')}")
            if final == "delivered":
                changes.append(f"delivered_at = {st.arg(a.at, 'float8')}")
            st.step("delivery", f"UPDATE webhook_deliveries SET {', '.join(changes)}"
                                f" WHERE id = {delivery} AND {gate}")
            return (outcome, disabled_now) if await conn.fetchval(
                st.sql(f"SELECT {gate}"), *st.args) else None

        async def unit() -> tuple[str, str | None]:
            async with self._pool.acquire() as conn:
                while (recorded := await record(conn)) is None:
                    pass  # another attempt changed the endpoint's health meanwhile
                return recorded
        return await self._spawn(unit())

    async def release_delivery_claims(self, holder: str | None = None) -> int:
        """`holder`'s delivery claims (this store's worker id's by default): due
        again at once; other processes' claims are left to their lease."""
        return await self._release("webhook_deliveries", "pending", holder)

    async def next_delivery_due(self, exclude: Sequence[tuple[str, str]] = ()) -> float | None:
        """When the next pending delivery (not leased, not excluded) comes due:
        leased rows carry their lease's end."""
        return await self._pool.fetchval(
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'"
            " AND NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[])"
            " AS busy (subscriber_id, endpoint_key)"
            " WHERE busy.subscriber_id = webhook_deliveries.subscriber_id"
            " AND busy.endpoint_key = webhook_deliveries.endpoint_key)",
            [s for s, _ in exclude], [e for _, e in exclude])

    async def delivery_queue_depth(self) -> int:
        return await self._pool.fetchval(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")

    async def list_deliveries(self, *, status: str | None, subscriber_id: str | None,
                              endpoint_key: str | None, limit: int) -> list[DeliveryRow]:
        where, args = _where(1, status=status, subscriber_id=subscriber_id,
                             endpoint_key=endpoint_key)
        rows = await self._pool.fetch(f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"
                                      f" WHERE {where} ORDER BY seq DESC"
                                      f" LIMIT ${len(args) + 1}", *args, limit)
        return [delivery_row(r) for r in rows]

    async def get_delivery(self, delivery_id: str
                           ) -> tuple[DeliveryRow, list[AttemptRow]] | None:
        async def unit(conn: Conn) -> tuple[DeliveryRow, list[AttemptRow]] | None:
            row = await conn.fetchrow(f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"
                                      " WHERE id = $1", delivery_id)
            if row is None:
                return None
            attempts = [AttemptRow(delivery_id=r[0], at=r[1], outcome=r[2], status_code=r[3],
                                   latency_ms=r[4], response_body=r[5], error=r[6])
                        for r in await conn.fetch(
                            "SELECT delivery_id, at, outcome, status_code, latency_ms,"
                            " response_body, error FROM webhook_attempts"
                            " WHERE delivery_id = $1 ORDER BY seq", delivery_id)]
            return delivery_row(row), attempts
        return await self._read(unit)

    async def retry_delivery(self, delivery_id: str, now: float
                             ) -> tuple[str, DeliveryRow | None]:
        """Queue one delivery again now (see SqliteStore.retry_delivery)."""
        async def unit(conn: Conn) -> tuple[str, DeliveryRow | None]:
            status = await conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0,"
                " next_attempt_at = $1, claimed_until = NULL, claimed_by = NULL,"
                " updated_at = $1 WHERE id = $2 AND status <> 'pending'", now, delivery_id)
            row = await conn.fetchrow(f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"
                                      " WHERE id = $1", delivery_id)
            if row is None:
                return "not_found", None
            if _count(status):
                self._notify(conn, "deliveries")
            return ("retried" if _count(status) else "pending"), delivery_row(row)
        return await self._tx(unit)

    async def replay_deliveries(self, since: float, now: float, *,
                                subscriber_id: str | None = None,
                                endpoint_key: str | None = None) -> int:
        """Queue again every failed delivery created at or after `since`."""
        async def unit(conn: Conn) -> int:
            where, args = _where(3, subscriber_id=subscriber_id, endpoint_key=endpoint_key)
            replayed = _count(await conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0,"
                " next_attempt_at = $1, claimed_until = NULL, claimed_by = NULL,"
                f" updated_at = $1 WHERE status = 'failed' AND created_at >= $2 AND {where}",
                now, since, *args))
            if replayed:
                self._notify(conn, "deliveries")
            return replayed
        return await self._tx(unit)

    async def list_endpoint_health(self) -> list[EndpointRow]:
        async def unit(conn: Conn) -> list[EndpointRow]:
            counts: dict[tuple[str, str], dict[str, int]] = {}
            for sub, key, status, n in await conn.fetch(
                    "SELECT subscriber_id, endpoint_key, status, COUNT(*)"
                    " FROM webhook_deliveries WHERE status IN ('pending', 'failed')"
                    " GROUP BY subscriber_id, endpoint_key, status"):
                counts.setdefault((sub, key), {})[status] = n
            out = []
            for r in await conn.fetch("SELECT subscriber_id, endpoint_key, url, failing_since,"
                                      " last_success_at, last_failure_at, disabled_at,"
                                      " disabled_reason FROM webhook_endpoints"
                                      " ORDER BY subscriber_id, endpoint_key"):
                c = counts.get((r[0], r[1]), {})
                out.append(EndpointRow(subscriber_id=r[0], endpoint_key=r[1], url=r[2],
                                       failing_since=r[3], last_success_at=r[4],
                                       last_failure_at=r[5], disabled_at=r[6],
                                       disabled_reason=r[7], pending=c.get("pending", 0),
                                       failed=c.get("failed", 0)))
            return out
        return await self._read(unit)

    async def enable_endpoint(self, endpoint_key: str, subscriber_id: str | None = None) -> int:
        """Enable an endpoint again (and forget its failing streak); how many were disabled."""
        where, args = _where(1, endpoint_key=endpoint_key, subscriber_id=subscriber_id)
        return _count(await self._statement(lambda conn: conn.execute(
            "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL,"
            f" failing_since = NULL WHERE disabled_at IS NOT NULL AND {where}", *args)))

    # ------------------------------------------------------------- dashboards

    async def search_registrations(self, *, number: str | None, locale: str | None,
                                   status: str | None, instance_id: int | None,
                                   limit: int) -> list[Registration]:
        where, args = _where(1, locale=locale, status=status, instance_id=instance_id)
        if number:
            args.append("%" + like_escaped(number) + "%")
            where += f" AND number LIKE ${len(args)} ESCAPE '\\'"
        rows = await self._pool.fetch(f"SELECT {REG_COLUMNS} FROM registrations WHERE {where}"
                                      f" ORDER BY registered_at DESC LIMIT ${len(args) + 1}",
                                      *args, limit)
        return [registration_row(r) for r in rows]

    async def search_outbound(self, *, subscriber_id: str | None, status: str | None,
                              error_code: int | None, instance_id: int | None,
                              limit: int) -> list[OutboundRow]:
        where, args = _where(1, o__subscriber_id=subscriber_id, o__error_code=error_code,
                             o__instance_id=instance_id)
        if status == "queued":  # a message being sent is still queued to its sender
            where += " AND o.status IN ('queued', 'sending')"
        elif status is not None:
            args.append(status)
            where += f" AND o.status = ${len(args)}"
        rows = await self._pool.fetch(f"SELECT {OUTBOUND_COLUMNS} FROM {OUTBOUND_FROM}"
                                      f" WHERE {where} ORDER BY o.seq DESC"
                                      f" LIMIT ${len(args) + 1}", *args, limit)
        return [outbound_row(r) for r in rows]

    async def activity(self, *, since: float, now: float,
                       buckets: int) -> list[InstanceActivity]:
        width = max(now - since, 1e-9) / buckets

        async def counts(table: str, at: str) -> dict[int, list[int]]:
            out: dict[int, list[int]] = {}
            for instance, bucket, n in await self._pool.fetch(
                    f"SELECT instance_id, floor(({at} - $1) / $2)::int, COUNT(*) FROM {table}"
                    f" WHERE {at} >= $1 AND {at} < $3 GROUP BY 1, 2", since, width, now):
                out.setdefault(instance, [0] * buckets)[min(bucket, buckets - 1)] += n
            return out

        inbound = await counts("inbound", "received_at")
        outbound = await counts("outbound", "created_at")
        queues = {r[0]: (r[1], r[2]) for r in await self._pool.fetch(
            "SELECT instance_id, COUNT(*), MIN(created_at) FROM outbound"
            " WHERE status = 'queued' GROUP BY instance_id")}
        empty = (0,) * buckets
        return [InstanceActivity(instance_id=i, inbound=tuple(inbound.get(i, empty)),
                                 outbound=tuple(outbound.get(i, empty)),
                                 queued=queues.get(i, (0, None))[0],
                                 oldest_queued_at=queues.get(i, (0, None))[1])
                for i in sorted({*inbound, *outbound, *queues})]


async def _migrate(conn: Conn) -> None:
    """Apply the migrations this database lacks, all in one transaction, under
    an advisory lock: a second process opening at once waits, then finds the
    schema current. The lock is per schema (several deployments may share a
    database, one schema each, chosen by the URL's `search_path`)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
                           LOCK_MIGRATE)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version"
                           " (version integer NOT NULL)")
        version = await conn.fetchval("SELECT version FROM schema_version")
        if version is None:
            version = 0
            await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        if version > len(MIGRATIONS):
            raise RuntimeError(f"database schema {version} is newer than this wagate "
                               f"({len(MIGRATIONS)}); upgrade wagate")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.execute(script)
            await conn.execute("UPDATE schema_version SET version = $1", number)

