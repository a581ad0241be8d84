"""PostgreSQL store over asyncpg: the `Store` protocol for several processes on
one database.

Each unit of work is one transaction on a pooled connection. What SQLite gets
from running units one after another on one connection, this store gets from
locks held in the database, so it holds across processes:
- queues are claimed with `FOR UPDATE SKIP LOCKED`, each claim naming its
  holder (`claimed_by`, this store's worker id) and its lease
  (`claimed_until`: a dead process's claims come due when the lease ends;
  webhook and media claims also move the row's `next_attempt_at` there); a
  start releases its own claims only;
- a chat's messages are serialized by an advisory lock on (instance, chat),
  held from reading the chat's state to committing what it caused (a
  session-level lock from the read, handed to the write's transaction);
- a send locks its subscriber's quota row, so a quota or recipient limit is
  checked and spent in one transaction, exact under any concurrency;
- statuses for one provider message id are serialized by an advisory lock.
Queuing work wakes this process's workers once it commits (bot/store/wakeups.py)
and NOTIFYs the others (`wagate_outbound`, `wagate_deliveries`, ...: the
payload is this store's worker id, so each process ignores its own echoes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bot.store.postgres.connector import PostgresConnector
from bot.store.postgres.wakes import Wakes
from bot.store.protocol import StoreUnavailable
from bot.store.wakeups import Queue, Wakeups

T = TypeVar("T")
Conn = asyncpg.Connection  # a pooled connection (a proxy of one, to be exact)

# Advisory lock namespaces (the first key of the two-key form): "wagm", "wagc", "wags".
LOCK_MIGRATE = 0x7761676D
LOCK_CHAT = 0x77616763
LOCK_STATUS = 0x77616773

CHANNELS: dict[Queue, str] = {"outbound": "wagate_outbound", "deliveries": "wagate_deliveries",
                              "media": "wagate_media", "managed": "wagate_subscribers"}


def load_migrations() -> list[str]:
    """`pg_migrations/NNNN_name.sql`, applied in order; append-only, as for SQLite."""
    folder = Path(__file__).parent.parent / "pg_migrations"
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


def affected(status: str) -> int:
    """Rows an INSERT/UPDATE/DELETE touched, from its command tag ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


def literal(text: str) -> str:
    """`text` as an SQL string literal, for SQL sent without parameters (to travel
    with a BEGIN). An E'' string reads the same whatever the server's settings."""
    if "\0" in text:
        raise ValueError("a NUL character cannot be sent to PostgreSQL")
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


async def _keep_session(conn: Conn) -> None:
    """The pool's reset on release: nothing to send. asyncpg's default costs a
    round trip per unit (advisory unlock all, CLOSE ALL, UNLISTEN *, RESET ALL)
    for session state this store never leaves: the session-level locks of
    held chats are each handed to the write's transaction or released by `_unhold`
    before its connection goes back; it opens no cursors, it LISTENs on a
    connection of its own (not pooled) and SETs nothing. A transaction left
    open is still rolled back on release (asyncpg does that before calling
    this), as `_finish` already does itself."""


# Every array type the store's statements send or read. asyncpg learns a type
# it has no codec for by a catalog query (a recursive one, planned anew each
# time: 5-15 ms of the server's CPU, and three round trips), per connection,
# each time a statement meets types it has not learnt yet: two or three times
# per connection. Asked once as each connection opens, they are learnt in one.
_ARRAY_TYPES = ("SELECT $1::boolean[], $2::float8[], $3::bytea[], $4::integer[], $5::int8[],"
                " $6::text[]")


async def _learn_types(conn: Conn) -> None:
    """The pool's init on each new connection: learn `_ARRAY_TYPES` at once."""
    await conn.prepare(_ARRAY_TYPES)


class Rollback(Exception):
    """Raised inside a unit to undo all of it and answer `value` (a refused send)."""

    def __init__(self, value: Any) -> None:
        self.value = value


def chat_key(instance_id: int, chat: str) -> int:
    """A chat's advisory lock key (the second, after LOCK_CHAT): an int4."""
    return zlib.crc32(f"{instance_id}:{chat}".encode()) - 2**31


def chat_lock(instance_id: int, chat: str) -> str:
    """`SELECT pg_advisory_xact_lock(...)` for a chat, as literal SQL (two
    integers), so that it travels with the BEGIN in one round trip."""
    return f"SELECT pg_advisory_xact_lock({LOCK_CHAT}, {chat_key(instance_id, chat)})"


class PostgresPool:
    """The shared store's connections and transactions: every unit of work runs
    through `_tx`, `_statement` or `_read`."""

    # Several processes serve one database: a claim found at start may be a
    # live process's; only this store's own (its worker id's) are released.
    single_process = False

    def __init__(self, pool: asyncpg.Pool, url: str, worker_id: str) -> None:
        self._pool = pool
        self._url = url
        self.worker_id = worker_id
        self.connector = PostgresConnector(read=self._read, tx=self._tx,
                                           statement=self._statement, notify=self._notify)
        self._writes: set[asyncio.Future[Any]] = set()
        # Queues a unit's transaction filled, per connection: their NOTIFY
        # goes with its COMMIT.
        self._wakes: dict[Conn, set[Queue]] = {}
        self._listener: asyncpg.Connection | None = None
        self._wakeups = Wakeups()
        # A NOTIFY's payload: who sent it (as an SQL literal, to go with a COMMIT).
        self._sender = literal(worker_id)
        self._coalesced = Wakes(lambda channel: self._pool.execute(
            "SELECT pg_notify($1, $2)", channel, worker_id), self._start)

    @classmethod
    async def open(cls: type[P], url: str, *, worker_id: str | None = None,
                   pool_size: int = 10) -> P:
        """Connect (a pool of up to `pool_size`) and bring the schema up to date;
        processes starting at once migrate one after another."""
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size,
                                             init=_learn_types, reset=_keep_session)
        except (OSError, TimeoutError, asyncpg.PostgresError,
                asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(f"cannot open the PostgreSQL store at {redacted(url)}: "
                                   f"{exc}") from exc
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url, worker_id or default_worker_id())

    async def settled(self) -> None:
        """Wait until every write unit started so far has committed (or failed)."""
        while self._writes:
            await asyncio.wait(set(self._writes))

    async def close(self) -> None:
        await self._coalesced.flush()
        await self.settled()
        await self._let_go_all()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self._pool.close()

    async def ping(self) -> None:
        await self._pool.fetchval("SELECT 1")

    async def reserve_pace(self, instance_id: int, interval: float, count: int = 1) -> float:
        """Book this number's next `count` send slots, `interval` s apart, after the
        last one booked by any process; how many seconds until the first comes.
        A process that dies after booking only leaves a gap. (Every booking of
        a number writes its one row: a batch books at once, not a row lock and
        a commit per message.)"""
        return float(await self._pool.fetchval(
            "WITH now AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS t)"
            " INSERT INTO pace AS p (instance_id, next_at) SELECT $1, now.t + $2 FROM now"
            " ON CONFLICT (instance_id) DO UPDATE"
            " SET next_at = GREATEST(p.next_at, (SELECT t FROM now)) + $2"
            " RETURNING next_at - $2 - (SELECT t FROM now)", instance_id, interval * count))

    async def on_work(self, queue: Queue, wake: Callable[[], None]) -> None:
        """Call `wake` whenever any process (this one too) commits work to `queue`:
        this one's units call it once committed, the others' by NOTIFY (this
        one's own NOTIFYs, heard back, are ignored: its units called it). A
        wake-up may be lost (the listening connection dropped): workers still
        poll, this only cuts their latency."""
        self._wakeups.add(queue, wake)
        if self._listener is None:
            self._listener = await asyncpg.connect(self._url)
        me = self.worker_id

        def heard(_conn: object, _pid: int, _channel: str, sender: str) -> None:
            if sender != me:
                wake()
        await self._listener.add_listener(CHANNELS[queue], heard)

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
        back if `fn` raised (a `Rollback` answers its value)."""
        try:
            value = await fn(conn)
        except BaseException as exc:
            self._wakes.pop(conn, None)
            with contextlib.suppress(Exception):  # a broken connection: the pool drops it
                await conn.execute("ROLLBACK")
            if isinstance(exc, Rollback):
                return exc.value
            raise
        queues = self._wakes.pop(conn, set())
        channels = {CHANNELS[queue] for queue in queues}
        due = self._coalesced.now(channels)  # the others go after the window (wakes.py)
        await conn.execute("".join(f"SELECT pg_notify('{channel}', {self._sender}); "
                                   for channel in due) + "COMMIT")
        self._committed(queues, channels.difference(due))
        return value

    def _committed(self, queues: Iterable[Queue], unsent: Iterable[str]) -> None:
        """A unit that filled `queues` committed: this process's workers are woken
        now; the other processes by its NOTIFYs, or, for the channels `unsent`
        (coalesced), by the one that goes when their window ends."""
        self._wakeups.call(queues)
        self._coalesced.after(unsent)

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

    async def _let_go_all(self) -> None:
        """Let every chat held from its read to its commit go (holds.py)."""

    async def _unhold(self, conn: Conn) -> None:
        """Give a connection that held chats back to the pool without their
        session locks, which no rollback and no reset releases: left on a
        pooled connection, one would hold its chat in every process for good.
        The connection holds no other locks, so all of its own go; when that
        cannot be said, the connection is closed (its session's end frees them)."""
        unlocked = False
        try:
            with contextlib.suppress(Exception):
                if conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                await conn.execute("SELECT pg_advisory_unlock_all()")
                unlocked = True
        finally:
            if not unlocked:
                conn.terminate()
            await self._pool.release(conn)

    async def _release(self, table: Literal["outbound", "webhook_deliveries", "inbound_media"],
                       waiting: str, holder: str | None) -> int:
        status = await self._statement(lambda conn: conn.execute(
            f"UPDATE {table} SET claimed_until = NULL, claimed_by = NULL,"
            " next_attempt_at = LEAST(next_attempt_at, $1)"
            " WHERE status = $2 AND claimed_by = $3",
            time.time(), waiting, holder or self.worker_id))
        return affected(status)


P = TypeVar("P", bound=PostgresPool)


async def migrate(conn: Conn) -> None:
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
