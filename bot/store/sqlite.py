"""SQLite store over aiosqlite: WAL, versioned migrations, one hop per unit of work."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

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
from bot.store.rows import DELIVERY_COLUMNS as _DELIVERY_COLUMNS
from bot.store.rows import OUTBOUND_COLUMNS as _OUTBOUND_COLUMNS
from bot.store.rows import OUTBOUND_FROM as _OUTBOUND_FROM
from bot.store.rows import REG_COLUMNS as _REG_COLUMNS
from bot.store.rows import delivery_row as _delivery
from bot.store.rows import like_escaped
from bot.store.rows import outbound_row as _outbound
from bot.store.rows import registration_row as _registration
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

def load_migrations() -> list[str]:
    """The schema's history: `migrations/NNNN_name.sql`, applied in order.

    Append-only: a released migration is never edited; a change is a new file.
    """
    folder = Path(__file__).with_name("migrations")
    files = sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return [path.read_text(encoding="utf-8") for path in files]


MIGRATIONS = load_migrations()

_KEYWORD_AT = 10  # its index after _REG_COLUMNS in `SELECT {_REG_COLUMNS}, keyword_at`
# A user's registration on an instance, by number or by the provider's user id;
# the row keyed on the number first (a user first known by the id is linked
# to the number by the first message that carries both). Two indexed lookups:
# an OR would walk every registration of the instance.
_REG_OF_USER = (f"SELECT {_REG_COLUMNS}, keyword_at, 0 AS rank FROM registrations"
                " WHERE instance_id = ? AND number = ?"
                f" UNION ALL SELECT {_REG_COLUMNS}, keyword_at, 1 FROM registrations"
                " WHERE instance_id = ? AND user_id = ? ORDER BY rank LIMIT 1")


def _reg_of_user(conn: sqlite3.Connection, instance_id: int, number: str | None,
                 user_id: str | None) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn.execute(
        _REG_OF_USER, (instance_id, number, instance_id, user_id or number)).fetchone()
    return row


def _where(**filters: Any) -> tuple[str, list[Any]]:
    """`column = ?` for each filter that is not None, ANDed: ("a = ? AND b = ?", [1, 2])."""
    used = {col: val for col, val in filters.items() if val is not None}
    clause = " AND ".join(f"{col.replace('__', '.')} = ?" for col in used) or "1 = 1"
    return clause, list(used.values())


MAX_BATCH = 512
# How far down the due deliveries a claim looks when some endpoints are busy.
CLAIM_WINDOW = 512


@dataclass(slots=True)
class _Unit:
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    future: asyncio.Future[Any]


class SqliteStore:
    """The embedded store. Every public method is one unit of work."""

    # One process serves a SQLite file: any claim found at start is a dead
    # process's, whoever holds it.
    single_process = True

    def __init__(self, db: aiosqlite.Connection, path: str) -> None:
        self._db = db
        self.path = path
        self._reader: sqlite3.Connection | None = None
        self._pending: list[_Unit] = []
        self._urgent: list[_Unit] = []  # units that jump the queue (see _tx_urgent)
        self._drainer: asyncio.Task[None] | None = None
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._pace: dict[int, float] = {}  # instance -> next free send slot (monotonic)

    async def on_work(self, queue: str, wake: Callable[[], None]) -> None:
        """One process serves the file: its pipeline wakes its workers itself."""

    async def reserve_pace(self, instance_id: int, interval: float) -> float:
        """One process sends for the file, so the pace lives in memory: exact,
        and no write per send."""
        now = time.monotonic()
        slot = max(now, self._pace.get(instance_id, 0.0))
        self._pace[instance_id] = slot + interval
        return slot - now

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        store = cls(db, path)
        # One hop to the connection's thread per call: aiosqlite runs `fn` there.
        await db._execute(store._setup, db._conn)
        # A second connection to ":memory:" or "" (a private temporary file)
        # would open another, empty database: those read through the writer.
        if path not in ("", ":memory:"):
            store._reader = sqlite3.connect(path, isolation_level=None)
            store._reader.execute("PRAGMA query_only=ON")
            store._reader.execute("PRAGMA busy_timeout=0")
        return store

    async def settled(self) -> None:
        """Wait until every unit queued so far has run (and committed)."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)

    async def close(self) -> None:
        await self.settled()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        await self._db.close()

    # Units of work are queued and run in batches: one hop to the connection's
    # thread and one COMMIT for every unit that arrived meanwhile (group
    # commit). Each write unit runs inside its own SAVEPOINT, so a unit that
    # fails is rolled back alone; units run one after another on one
    # connection, so each sees the ones before it and none interleave.

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read unit."""
        return await self._submit(fn, write=False)

    async def _lookup(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read unit of a few indexed point lookups, run right here on the
        event loop's thread from a read-only connection. On the request path
        this saves a round trip to the writer's thread, whose wake-ups cost
        more (~70 µs when batches are small) than the lookups themselves
        (~20 µs). The unit reads one snapshot (one read transaction) holding
        every transaction committed before it; WAL readers never wait for the
        writer. Should SQLite still answer busy (say, while it recovers the
        WAL after a crash), the unit queues for the writer's thread instead."""
        reader = self._reader
        if reader is not None:
            try:
                reader.execute("BEGIN")
                try:
                    return fn(reader)
                finally:
                    reader.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                # Extended codes (SQLITE_BUSY_RECOVERY, ...) keep the primary in the low byte.
                if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                if reader.in_transaction:
                    reader.execute("ROLLBACK")
        return await self._run(fn)

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A write unit: all of it commits, or none of it."""
        return await self._submit(fn, write=True)

    async def _tx_urgent(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A small write unit that must not wait behind others: the next commit
        carries the urgent units alone, so none waits for a batch queued
        before it (only for the one already running). It records that a
        provider accepted a message: until that commits, a crash sends the
        message twice."""
        return await self._submit(fn, write=True, urgent=True)

    async def _submit(self, fn: Callable[[sqlite3.Connection], T], *, write: bool,
                      urgent: bool = False) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._pending).append(_Unit(fn, write, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="sqlite-group-commit")
        return await future

    def _next_batch(self) -> list[_Unit]:
        if self._urgent:
            batch, self._urgent = self._urgent[:MAX_BATCH], self._urgent[MAX_BATCH:]
        else:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        return batch

    async def _drain(self) -> None:
        while self._pending or self._urgent:
            batch = self._next_batch()
            try:
                results = await self._db._execute(self._run_batch, self._db._conn, batch)
            except BaseException as exc:  # the connection itself failed
                results = [(False, exc)] * len(batch)
            for unit, (ok, value) in zip(batch, results, strict=True):
                if unit.future.done():
                    continue  # the caller went away; the work stands (at-least-once)
                if ok:
                    unit.future.set_result(value)
                else:
                    unit.future.set_exception(value)

    @staticmethod
    def _run_batch(conn: sqlite3.Connection, batch: list[_Unit]) -> list[tuple[bool, Any]]:
        writes = any(unit.write for unit in batch)
        results: list[tuple[bool, Any]] = []
        try:
            if writes:
                conn.execute("BEGIN IMMEDIATE")
            for unit in batch:
                if unit.write:
                    conn.execute("SAVEPOINT unit")
                try:
                    value = unit.fn(conn)
                except Exception as exc:
                    if writes and not conn.in_transaction:
                        # SQLite aborted the whole transaction (disk full, I/O
                        # error): nothing of this batch stands; fail it all
                        # rather than let later units autocommit one by one.
                        raise
                    if unit.write:
                        conn.execute("ROLLBACK TO unit")
                        conn.execute("RELEASE unit")
                    results.append((False, exc))
                    continue
                if unit.write:
                    conn.execute("RELEASE unit")
                results.append((True, value))
            if writes:
                conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(False, exc)] * len(batch)
        return results

    @staticmethod
    def _setup(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a 200 promises the message survives a power cut, not just a
        # crash of this process; group commit spreads the fsync over a batch.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        if version > len(MIGRATIONS):
            raise RuntimeError(f"database schema {version} is newer than this wagate "
                               f"({len(MIGRATIONS)}); upgrade wagate")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (number,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    # ------------------------------------------------------------- inbound

    async def load_inbound_context(self, instance_id: int, sender: str,
                                   group_id: str | None,
                                   user_id: str | None = None) -> InboundContext:
        def unit(conn: sqlite3.Connection) -> InboundContext:
            reg = _reg_of_user(conn, instance_id, sender, user_id)
            group = None
            if group_id is not None:
                row = conn.execute("SELECT instance_id, group_id, name, registered_at FROM groups"
                                   " WHERE instance_id = ? AND group_id = ?",
                                   (instance_id, group_id)).fetchone()
                if row:
                    group = Group(instance_id=row[0], group_id=row[1], name=row[2],
                                  registered_at=row[3])
            chat = f"group:{group_id}" if group_id is not None else sender
            marks = dict(conn.execute("SELECT kind, last_at FROM auto_replies "
                                      "WHERE instance_id = ? AND number = ?",
                                      (instance_id, chat)).fetchall())
            return InboundContext(registration=_registration(reg) if reg else None, group=group,
                                  last_auto_reply_at=marks.get("any"),
                                  last_hint_at=marks.get("hint"),
                                  last_sender=self._last_sender(conn, instance_id,
                                                                reg[1] if reg else sender,
                                                                group_id),
                                  keyword_at=reg[_KEYWORD_AT] if reg else None)
        return await self._lookup(unit)

    async def commit_inbound(self, effects: Effects, now: float) -> bool:
        msg = effects.inbound

        def unit(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO inbound (provider, provider_message_id, instance_id, sender, user_id,"
                " group_id, kind, text, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider, provider_message_id) DO NOTHING",
                (msg.provider, msg.provider_message_id, msg.instance_id, msg.sender, msg.user_id,
                 msg.group.id if msg.group else None, msg.kind, msg.text, now))
            if cur.rowcount == 0:
                return False  # a redelivery: the first delivery's effects stand
            private = msg.group is None
            if private and msg.user_id and msg.user_id != msg.sender:
                self._link_user(conn, msg.instance_id, msg.sender, msg.user_id)
            reg = effects.registration
            if reg is not None:
                conn.execute(
                    f"INSERT INTO registrations ({_REG_COLUMNS}, keyword_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
                    " ELSE excluded.opted_out_at END",
                    (reg.instance_id, reg.number, reg.locale, reg.status, reg.keyword_subscriber,
                     now, now, None if reg.status == "active" else now,
                     msg.user_id if private else None, None,
                     now if reg.keyword_subscriber else None))
            if private:  # the user's own message opens their window (never ours)
                conn.execute("UPDATE registrations SET last_inbound_at = MAX(?,"
                             " COALESCE(last_inbound_at, 0)) WHERE instance_id = ?"
                             " AND number = ?",
                             (inbound_time(msg.timestamp, now), msg.instance_id, msg.sender))
            if effects.group is not None:
                g = effects.group
                conn.execute(
                    "INSERT INTO groups (instance_id, group_id, name, name_key, registered_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id, group_id) DO UPDATE SET"
                    " name = excluded.name, name_key = excluded.name_key",
                    (g.instance_id, g.group_id, g.name, group_name_key(g.name), now))
            for kind in effects.auto_reply_marks:
                conn.execute(
                    "INSERT INTO auto_replies (instance_id, number, kind, last_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (instance_id, number, kind)"
                    " DO UPDATE SET last_at = excluded.last_at",
                    (msg.instance_id, msg.chat, kind, now))
            self._insert_outbound(conn, effects.replies, now)
            self._insert_deliveries(conn, effects.deliveries, now)
            return True
        return await self._tx(unit)

    @staticmethod
    def _link_user(conn: sqlite3.Connection, instance_id: int, number: str,
                   user_id: str) -> None:
        """A message carrying both a number and a user id: the registration first
        known by the id becomes the number's (one registration, not two), and the
        recipient it counted as for quotas becomes the number too."""
        conn.execute("UPDATE OR IGNORE registrations SET number = ? WHERE instance_id = ?"
                     " AND number = ?", (number, instance_id, user_id))
        # Both existed (the number registered apart): the number's row stands,
        # with the later window of the two.
        gone = conn.execute("DELETE FROM registrations WHERE instance_id = ? AND number = ?"
                            " RETURNING last_inbound_at", (instance_id, user_id)).fetchone()
        conn.execute("UPDATE registrations SET user_id = ?, last_inbound_at = MAX("
                     "COALESCE(last_inbound_at, 0), COALESCE(?, 0)) WHERE instance_id = ?"
                     " AND number = ?", (user_id, gone[0] if gone else None, instance_id,
                                         number))
        conn.execute("UPDATE OR IGNORE send_recipients SET recipient = ? WHERE recipient = ?",
                     (number, user_id))

    @staticmethod
    def _insert_outbound(conn: sqlite3.Connection, drafts: list[OutboundDraft],
                         now: float) -> None:
        conn.executemany(
            "INSERT INTO outbound (id, instance_id, to_number, group_id, type, text, caption,"
            " filename, mime, media, subscriber_id, template, status, next_attempt_at,"
            " created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
            [(d.id, d.instance_id, d.to, d.group_id, d.type, d.text, d.caption, d.filename,
              d.mime, d.media, d.subscriber_id, d.template, now, now, now) for d in drafts])
        conn.executemany("INSERT INTO outbound_history (message_id, at, status)"
                         " VALUES (?, ?, 'queued')", [(d.id, now) for d in drafts])

    @staticmethod
    def _record(conn: sqlite3.Connection, message_id: str, at: float, status: str,
                code: int | None = None, title: str | None = None) -> None:
        """One row of a message's status history, in the caller's transaction."""
        conn.execute("INSERT INTO outbound_history (message_id, at, status, error_code,"
                     " error_title) VALUES (?, ?, ?, ?, ?)",
                     (message_id, at, status, code, title))

    async def apply_status(self, update: StatusUpdate, now: float,
                           route: Callable[[OutboundRow], list[DeliveryDraft]] | None = None
                           ) -> OutboundRow | None:
        def unit(conn: sqlite3.Connection) -> OutboundRow | None:
            row = conn.execute("SELECT id, status FROM outbound WHERE provider_message_id = ?",
                               (update.provider_message_id,)).fetchone()
            if row is None:
                # Maybe ours, before the send's answer recorded its id: park it
                # (the best status wins); parked ones of others age out in a day.
                early = conn.execute("SELECT status FROM early_statuses"
                                     " WHERE provider_message_id = ?",
                                     (update.provider_message_id,)).fetchone()
                if early is None or status_advances(early[0], update.status):
                    conn.execute("INSERT OR REPLACE INTO early_statuses (provider_message_id,"
                                 " status, error_code, error_title, received_at)"
                                 " VALUES (?, ?, ?, ?, ?)",
                                 (update.provider_message_id, update.status, update.error_code,
                                  update.error_title, now))
                conn.execute("DELETE FROM early_statuses WHERE received_at < ?", (now - 86400,))
                return None
            if update.pricing_category is not None:  # told with sent and delivered alike
                conn.execute("UPDATE outbound SET pricing_category = ?, billable = ?"
                             " WHERE id = ?", (update.pricing_category, None if
                                               update.billable is None
                                               else int(update.billable), row[0]))
            # Media kept for a provider to fetch (mark_sent keep_media) are fetched
            # by the time it reports any status.
            conn.execute("UPDATE outbound SET media = NULL WHERE id = ? AND media IS NOT NULL",
                         (row[0],))
            # Statuses arrive out of order; never move backwards (read -> delivered).
            if not status_advances(row[1], update.status):
                return None
            conn.execute("UPDATE outbound SET status = ?, error_code = COALESCE(?, error_code),"
                         " error_title = COALESCE(?, error_title), updated_at = ? WHERE id = ?",
                         (update.status, update.error_code, update.error_title, now, row[0]))
            self._record(conn, row[0], status_time(update, now), update.status,
                         update.error_code, update.error_title)
            got = _outbound(conn.execute(f"SELECT {_OUTBOUND_COLUMNS} FROM {_OUTBOUND_FROM}"
                                         " WHERE o.id = ?", (row[0],)).fetchone())
            if route is not None:  # webhook deliveries commit with the status they tell of
                self._insert_deliveries(conn, route(got), now)
            return got
        return await self._tx(unit)

    # ------------------------------------------------------------- outbound queue

    async def enqueue(self, drafts: list[OutboundDraft], now: float) -> None:
        await self._tx(lambda conn: self._insert_outbound(conn, drafts, now))

    async def claim_outbound(self, now: float, limit: int, lease: float,
                             exclude_instances: Sequence[int] = (),
                             holder: str | None = None) -> list[OutboundRow]:
        """Up to `limit` due messages, leased to `holder` until `now + lease` (a
        visibility timeout: next_attempt_at moves to the lease's end, so rows in
        flight are never walked past), skipping numbers in `exclude_instances`."""
        def unit(conn: sqlite3.Connection) -> list[OutboundRow]:
            due = ("SELECT seq, instance_id FROM outbound INDEXED BY outbound_due"
                   " WHERE status = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at")
            if exclude_instances:  # a bounded window, never the whole backlog
                skip = ",".join("?" * len(exclude_instances))
                ids = [r[0] for r in conn.execute(
                    f"SELECT seq FROM ({due} LIMIT {CLAIM_WINDOW})"
                    f" WHERE instance_id NOT IN ({skip}) LIMIT ?",
                    (now, *exclude_instances, limit))]
            else:
                ids = [r[0] for r in conn.execute(f"{due} LIMIT ?", (now, limit))]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            conn.execute(f"UPDATE outbound SET claimed_until = ?, claimed_by = ?,"
                         f" next_attempt_at = ? WHERE seq IN ({marks})",
                         (now + lease, holder, now + lease, *ids))
            rows = conn.execute(f"SELECT {_OUTBOUND_COLUMNS} FROM {_OUTBOUND_FROM}"
                                f" WHERE o.seq IN ({marks}) ORDER BY o.seq", ids).fetchall()
            return [_outbound(r) for r in rows]
        return await self._tx(unit)

    async def outbound_media(self, message_id: str) -> bytes | None:
        def unit(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT media FROM outbound WHERE id = ?", (message_id,)).fetchone()
            return row[0] if row else None
        return await self._run(unit)

    async def mark_sent(self, message_id: str, provider_message_id: str, now: float, *,
                        keep_media: bool = False) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            before = conn.execute("SELECT status FROM outbound WHERE id = ?",
                                  (message_id,)).fetchone()
            if before is not None and before[0] in ("queued", "sending"):
                self._record(conn, message_id, now, "sent")
            conn.execute(
                "UPDATE outbound SET status = CASE WHEN status IN ('queued', 'sending')"
                " THEN 'sent' ELSE status END, provider_message_id = ?, attempts = attempts + 1,"
                " claimed_until = NULL, media = CASE WHEN ? THEN media END, updated_at = ?"
                " WHERE id = ?", (provider_message_id, keep_media, now, message_id))
            early = conn.execute("DELETE FROM early_statuses WHERE provider_message_id = ?"
                                 " RETURNING status, error_code, error_title, received_at",
                                 (provider_message_id,)).fetchone()
            if early is not None and keep_media:  # the provider has fetched them already
                conn.execute("UPDATE outbound SET media = NULL WHERE id = ?", (message_id,))
            if early is not None and status_advances("sent", early[0]):
                conn.execute("UPDATE outbound SET status = ?, error_code = COALESCE(?,"
                             " error_code), error_title = COALESCE(?, error_title) WHERE id = ?",
                             (*early[:3], message_id))
                self._record(conn, message_id, early[3], *early[:3])
        await self._tx_urgent(unit)

    async def mark_retry(self, message_id: str, next_attempt_at: float, code: int | None,
                         title: str | None, now: float) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE outbound SET attempts = attempts + 1, next_attempt_at = ?,"
                         " claimed_until = NULL, error_code = ?, error_title = ?,"
                         " updated_at = ? WHERE id = ?",
                         (next_attempt_at, code, title, now, message_id))
            self._record(conn, message_id, now, "retry", code, title)
        await self._tx(unit)

    async def mark_failed(self, message_id: str, code: int | None, title: str | None,
                          now: float) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE outbound SET status = 'failed', attempts = attempts + 1,"
                         " claimed_until = NULL, error_code = ?, error_title = ?,"
                         " media = NULL, updated_at = ? WHERE id = ?",
                         (code, title, now, message_id))
            self._record(conn, message_id, now, "failed", code, title)
        await self._tx(unit)

    async def release_claims(self, holder: str | None = None) -> int:
        """Claims of a stopped or killed worker, `holder`'s (every claim when
        None): due again at once. How many were released."""
        mine, args = (" AND claimed_by = ?", [holder]) if holder is not None else ("", [])
        return await self._tx(lambda conn: conn.execute(
            "UPDATE outbound SET claimed_until = NULL, next_attempt_at = MIN(next_attempt_at, ?)"
            f" WHERE status = 'queued' AND claimed_until IS NOT NULL{mine}",
            (time.time(), *args)).rowcount)

    async def next_outbound_due(self, exclude_instances: Sequence[int] = ()) -> float | None:
        def unit(conn: sqlite3.Connection) -> float | None:
            if not exclude_instances:  # leased rows carry their lease's end: an index lookup
                row = conn.execute("SELECT MIN(next_attempt_at) FROM outbound"
                                   " WHERE status = 'queued'").fetchone()
            else:  # as a claim looks: a bounded window, never the whole backlog
                skip = ",".join("?" * len(exclude_instances))
                row = conn.execute(
                    "SELECT MIN(next_attempt_at) FROM (SELECT next_attempt_at, instance_id"
                    " FROM outbound INDEXED BY outbound_due WHERE status = 'queued'"
                    f" ORDER BY next_attempt_at LIMIT {CLAIM_WINDOW})"
                    f" WHERE instance_id NOT IN ({skip})", tuple(exclude_instances)).fetchone()
            return row[0] if row else None
        return await self._run(unit)

    async def get_outbound(self, message_id: str) -> OutboundRow | None:
        def unit(conn: sqlite3.Connection) -> OutboundRow | None:
            row = conn.execute(f"SELECT {_OUTBOUND_COLUMNS} FROM {_OUTBOUND_FROM} WHERE o.id = ?",
                               (message_id,)).fetchone()
            return _outbound(row) if row else None
        return await self._run(unit)

    async def status_history(self, message_id: str) -> list[StatusEvent]:
        def unit(conn: sqlite3.Connection) -> list[StatusEvent]:
            rows = conn.execute("SELECT at, status, error_code, error_title FROM"
                                " outbound_history WHERE message_id = ? ORDER BY seq",
                                (message_id,)).fetchall()
            return [StatusEvent(at=r[0], status=r[1], error_code=r[2], error_title=r[3])
                    for r in rows]
        return await self._run(unit)

    async def list_outbox(self, *, instance_id: int | None, to: str | None,
                          limit: int) -> list[OutboundRow]:
        def unit(conn: sqlite3.Connection) -> list[OutboundRow]:
            where, args = _where(o__instance_id=instance_id, o__to_number=to)
            rows = conn.execute(
                f"SELECT {_OUTBOUND_COLUMNS} FROM {_OUTBOUND_FROM} WHERE {where}"
                " ORDER BY o.seq DESC LIMIT ?", (*args, limit)).fetchall()
            return [_outbound(r) for r in reversed(rows)]
        return await self._run(unit)

    async def queue_depth(self) -> tuple[int, float | None]:
        def unit(conn: sqlite3.Connection) -> tuple[int, float | None]:
            row = conn.execute("SELECT COUNT(*), MIN(created_at) FROM outbound"
                               " WHERE status = 'queued'").fetchone()
            return row[0], row[1]
        return await self._run(unit)

    # ------------------------------------------------------------- views

    async def list_registrations(self, *, instance_id: int | None, status: str | None,
                                 limit: int) -> list[Registration]:
        def unit(conn: sqlite3.Connection) -> list[Registration]:
            where, args = _where(instance_id=instance_id, status=status)
            rows = conn.execute(f"SELECT {_REG_COLUMNS} FROM registrations"
                                f" WHERE {where} ORDER BY registered_at LIMIT ?",
                                (*args, limit)).fetchall()
            return [_registration(r) for r in rows]
        return await self._run(unit)

    async def registrations_of(self, number: str) -> list[Registration]:
        """A user's registrations, by number or by user id."""
        def unit(conn: sqlite3.Connection) -> list[Registration]:
            rows = conn.execute(f"SELECT {_REG_COLUMNS} FROM registrations WHERE number = ?"
                                " OR user_id = ? ORDER BY instance_id", (number, number)
                                ).fetchall()
            return [_registration(r) for r in rows]
        return await self._run(unit)

    async def has_written(self, number: str) -> bool:
        def unit(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM inbound WHERE sender = ? LIMIT 1",
                                (number,)).fetchone() is not None
        return await self._run(unit)

    async def find_group(self, instance_id: int, name: str) -> Group | None:
        def unit(conn: sqlite3.Connection) -> Group | None:
            row = conn.execute("SELECT instance_id, group_id, name, registered_at FROM groups"
                               " WHERE instance_id = ? AND name_key = ?"
                               " ORDER BY registered_at DESC LIMIT 1",
                               (instance_id, group_name_key(name))).fetchone()
            return Group(instance_id=row[0], group_id=row[1], name=row[2],
                         registered_at=row[3]) if row else None
        return await self._run(unit)

    async def list_messages(self, *, direction: str | None, instance_id: int | None,
                            number: str | None, limit: int) -> list[MessageLogRow]:
        def unit(conn: sqlite3.Connection) -> list[MessageLogRow]:
            parts, args = [], []
            if direction in (None, "in"):
                where, a = _where(instance_id=instance_id, sender=number)
                parts.append("SELECT 'in', provider || ':' || provider_message_id, instance_id,"
                             " sender, group_id, kind, text, NULL, received_at FROM inbound"
                             f" WHERE {where}")
                args += a
            if direction in (None, "out"):
                where, a = _where(instance_id=instance_id, to_number=number)
                parts.append("SELECT 'out', id, instance_id, to_number, group_id, type,"
                             " COALESCE(text, caption), status, created_at FROM outbound"
                             f" WHERE {where}")
                args += a
            sql = " UNION ALL ".join(parts)
            rows = conn.execute(f"SELECT * FROM ({sql}) ORDER BY 9 DESC, 1 DESC LIMIT ?",
                                (*args, limit)).fetchall()
            return [MessageLogRow(direction=r[0], id=r[1], instance_id=r[2], number=r[3],
                                  group_id=r[4], type=r[5], text=r[6], status=r[7], at=r[8])
                    for r in reversed(rows)]
        return await self._run(unit)

    # ---- operations

    async def opt_out(self, number: str, instance_ids: Sequence[int], default_locale: str,
                      now: float,
                      route: Callable[[InboundContext], list[DeliveryDraft]] | None = None
                      ) -> list[tuple[Registration, str | None]]:
        """Opt a number out by hand on each instance (an admin's act, no message sent).

        A number that never registered there is recorded opted-out too, like a STOP.
        `route` is called for each active registration this ends, with the user's
        context there before; the deliveries it names commit with the opt-out.
        Returns each instance's registration after, with its status before (None
        when there was none)."""
        def unit(conn: sqlite3.Connection) -> list[tuple[Registration, str | None]]:
            out = []
            for instance_id in instance_ids:
                row = _reg_of_user(conn, instance_id, number, number)
                before = _registration(row) if row else None
                key = before.number if before is not None else number
                if before is not None and before.active and route is not None:
                    state = InboundContext(
                        registration=before, group=None, last_auto_reply_at=None,
                        last_hint_at=None, keyword_at=row[_KEYWORD_AT],
                        last_sender=self._last_sender(conn, instance_id, key, None))
                    self._insert_deliveries(conn, route(state), now)
                if before is None or before.active:
                    conn.execute(
                        "INSERT INTO registrations (instance_id, number, locale, status,"
                        " registered_at, updated_at, opted_out_at)"
                        " VALUES (?, ?, ?, 'opted_out', ?, ?, ?)"
                        " ON CONFLICT (instance_id, number) DO UPDATE SET"
                        " status = 'opted_out', updated_at = excluded.updated_at,"
                        " opted_out_at = excluded.opted_out_at",
                        (instance_id, key, default_locale, now, now, now))
                after = conn.execute(f"SELECT {_REG_COLUMNS} FROM registrations"
                                     " WHERE instance_id = ? AND number = ?",
                                     (instance_id, key)).fetchone()
                out.append((_registration(after), before.status if before else None))
            return out
        return await self._tx(unit)

    # ---- send API

    async def accept_send(self, draft: OutboundDraft, *, group_name: str | None,
                          limits: SendLimits, now: float,
                          fit: Fit | None = None) -> SendOutcome:
        """Check and queue one subscriber send as one transaction.

        The recipient must hold an active registration on the draft's instance
        (or `group_name` name a group registered there); a new recipient must
        fit the plan's total; the quota period (started by the first send when
        none runs) must have room. Only then are the count, the recipient and
        the message written, so a refused send leaves no trace. `fit`, given the
        recipient's registration, says what goes out (bot/window.py: as sent,
        as a template, or refused outside the window). Units run one
        after another on the store's connection, so concurrent sends see each
        other's counts and no limit is ever exceeded.
        """
        subscriber = draft.subscriber_id
        if subscriber is None:
            raise ValueError("a subscriber send needs draft.subscriber_id")

        def unit(conn: sqlite3.Connection) -> SendOutcome:
            queued = draft
            if group_name is not None:
                row = conn.execute("SELECT group_id FROM groups WHERE instance_id = ?"
                                   " AND name_key = ? ORDER BY registered_at DESC LIMIT 1",
                                   (draft.instance_id, group_name_key(group_name))).fetchone()
                if row is None:
                    return SendOutcome(status="unknown_group")
                queued = dataclasses.replace(draft, to=None, group_id=row[0])
                recipient = f"group:{draft.instance_id}:{row[0]}"
            else:
                row = _reg_of_user(conn, draft.instance_id, draft.to, draft.to)
                reg = _registration(row) if row else None
                if reg is None or not reg.active:
                    return SendOutcome(status="not_registered")
                queued = dataclasses.replace(draft, to=reg.number)  # a user id may name it
                if fit is not None:
                    fitted = fit(queued, reg)
                    if isinstance(fitted, SendOutcome):
                        return fitted
                    queued = fitted
                recipient = reg.number
            known = conn.execute("SELECT 1 FROM send_recipients WHERE subscriber_id = ?"
                                 " AND recipient = ?", (subscriber, recipient)).fetchone()
            (total,) = (0,) if known else conn.execute(
                "SELECT COUNT(*) FROM send_recipients WHERE subscriber_id = ?",
                (subscriber,)).fetchone()
            row = conn.execute("SELECT period_start, count FROM send_quota"
                               " WHERE subscriber_id = ?", (subscriber,)).fetchone()
            decision = send_decision(QuotaPeriod(start=row[0], count=row[1]) if row else None,
                                     known_recipient=known is not None, recipients=total,
                                     limits=limits, now=now)
            if not decision.queued:
                return decision
            conn.execute("INSERT INTO send_quota (subscriber_id, period_start, count)"
                         " VALUES (?, ?, ?) ON CONFLICT (subscriber_id) DO UPDATE SET"
                         " period_start = excluded.period_start, count = excluded.count",
                         (subscriber, decision.period_start, decision.count))
            if known is None:
                conn.execute("INSERT INTO send_recipients (subscriber_id, recipient,"
                             " first_sent_at) VALUES (?, ?, ?)", (subscriber, recipient, now))
            self._insert_outbound(conn, [queued], now)
            return dataclasses.replace(decision, message_id=queued.id)
        return await self._tx(unit)

    async def resend_as_template(self, build: Callable[[OutboundRow, str | None, bool],
                                                       str | None], now: float, *,
                                 message_id: str | None = None,
                                 provider_message_id: str | None = None,
                                 requeue: bool = True) -> OutboundRow | None:
        """A message the provider refused as outside the window: set it to go out
        again as the template `build` names (given the row, the user's locale and
        whether its media are still here), due now (`requeue`) or kept by its
        current claim. The row after, or None when `build` names none."""
        def unit(conn: sqlite3.Connection) -> OutboundRow | None:
            key, value = (("o.id", message_id) if message_id is not None
                          else ("o.provider_message_id", provider_message_id))
            found = conn.execute(f"SELECT {_OUTBOUND_COLUMNS}, o.media IS NOT NULL,"
                                 f" r.locale FROM {_OUTBOUND_FROM} LEFT JOIN registrations r"
                                 " ON r.instance_id = o.instance_id AND r.number = o.to_number"
                                 f" WHERE {key} = ?", (value,)).fetchone()
            if found is None or found[10] in ("failed", "delivered", "read"):
                return None
            template = build(_outbound(found), found[-1], bool(found[-2]))
            if template is None:
                return None
            if requeue:
                conn.execute("UPDATE outbound SET template = ?, status = 'queued',"
                             " provider_message_id = NULL, claimed_until = NULL,"
                             " next_attempt_at = ?, updated_at = ? WHERE id = ?",
                             (template, now, now, found[0]))
            else:
                conn.execute("UPDATE outbound SET template = ?, updated_at = ? WHERE id = ?",
                             (template, now, found[0]))
            return _outbound(conn.execute(f"SELECT {_OUTBOUND_COLUMNS} FROM {_OUTBOUND_FROM}"
                                          " WHERE o.id = ?", (found[0],)).fetchone())
        return await self._tx(unit)

    async def costs(self) -> list[CostRow]:
        """Messages by subscriber and the category the provider charged them as."""
        def unit(conn: sqlite3.Connection) -> list[CostRow]:
            return [CostRow(subscriber_id=r[0], category=r[1],
                            billable=None if r[2] is None else bool(r[2]), messages=r[3])
                    for r in conn.execute(
                        "SELECT subscriber_id, pricing_category, billable, COUNT(*)"
                        " FROM outbound INDEXED BY outbound_costs"
                        " WHERE pricing_category IS NOT NULL"
                        " GROUP BY subscriber_id, pricing_category, billable"
                        " ORDER BY subscriber_id, pricing_category, billable")]
        return await self._run(unit)

    async def send_usage(self, subscriber_id: str, period_seconds: float,
                         now: float) -> SendUsage:
        def unit(conn: sqlite3.Connection) -> SendUsage:
            row = conn.execute("SELECT period_start, count FROM send_quota"
                               " WHERE subscriber_id = ?", (subscriber_id,)).fetchone()
            (recipients,) = conn.execute("SELECT COUNT(*) FROM send_recipients"
                                         " WHERE subscriber_id = ?",
                                         (subscriber_id,)).fetchone()
            return current_usage(QuotaPeriod(start=row[0], count=row[1]) if row else None,
                                 recipients=recipients, period_seconds=period_seconds, now=now)
        return await self._run(unit)

    # ---- webhooks

    @staticmethod
    def _last_sender(conn: sqlite3.Connection, instance_id: int, sender: str,
                     group_id: str | None) -> tuple[str, float] | None:
        """The subscriber that most recently sent to this chat (the number, or the
        group) on this instance, and when; auto-replies (no subscriber) don't count."""
        if group_id is not None:
            row = conn.execute("SELECT subscriber_id, created_at FROM outbound"
                               " WHERE instance_id = ? AND group_id = ?"
                               " AND subscriber_id IS NOT NULL"
                               " ORDER BY created_at DESC LIMIT 1",
                               (instance_id, group_id)).fetchone()
        else:
            row = conn.execute("SELECT subscriber_id, created_at FROM outbound"
                               " WHERE instance_id = ? AND to_number = ?"
                               " AND subscriber_id IS NOT NULL"
                               " ORDER BY created_at DESC LIMIT 1",
                               (instance_id, sender)).fetchone()
        return (row[0], row[1]) if row else None

    @staticmethod
    def _disabled_endpoints(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
        return {(r[0], r[1]): r[2] or "disabled" for r in conn.execute(
            "SELECT subscriber_id, endpoint_key, disabled_reason FROM webhook_endpoints"
            " WHERE disabled_at IS NOT NULL")}

    @classmethod
    def _insert_deliveries(cls, conn: sqlite3.Connection, drafts: Sequence[DeliveryDraft],
                           now: float) -> None:
        """Queue deliveries; those for a disabled endpoint are recorded failed at once
        (they can be replayed once the endpoint is enabled again)."""
        if not drafts:
            return
        disabled = cls._disabled_endpoints(conn)
        rows = []
        for d in drafts:
            reason = disabled.get((d.subscriber_id, d.endpoint_key))
            rows.append((d.id, d.subscriber_id, d.endpoint_key, d.url, d.format, d.event_type,
                         d.payload, "pending" if reason is None else "failed", now,
                         None if reason is None else f"endpoint disabled: {reason}", now, now))
        conn.executemany(
            "INSERT INTO webhook_deliveries (id, subscriber_id, endpoint_key, url, format,"
            " event_type, payload, status, next_attempt_at, last_error, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    async def add_deliveries(self, drafts: Sequence[DeliveryDraft], now: float) -> None:
        await self._tx(lambda conn: self._insert_deliveries(conn, drafts, now))

    async def claim_deliveries(self, now: float, limit: int, lease: float,
                               exclude: Sequence[tuple[str, str]] = (),
                               holder: str | None = None,
                               due_by: float | None = None) -> list[DeliveryRow]:
        """Up to `limit` deliveries due by `due_by` (default `now`), leased to
        `holder` until `now + lease`, skipping the (subscriber, endpoint) pairs
        in `exclude` (those already busy here). Due deliveries of a disabled
        endpoint are failed instead of handed out."""
        def unit(conn: sqlite3.Connection) -> list[DeliveryRow]:
            # A claim pushes next_attempt_at to the lease's end (a visibility
            # timeout): leased rows are not due, so the partial index hands out
            # due rows without walking past the ones in flight.
            skip, args = _exclude_endpoints(exclude)
            # INDEXED BY: without statistics the planner prefers the status
            # index and sorts every pending row for each claim.
            due = ("SELECT * FROM webhook_deliveries INDEXED BY webhook_deliveries_due"
                   " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at")
            if skip:  # look at a bounded window only, never the whole backlog
                sql = (f"SELECT {_DELIVERY_COLUMNS} FROM ({due} LIMIT {CLAIM_WINDOW})"
                       f" WHERE 1 = 1{skip} ORDER BY next_attempt_at LIMIT ?")
            else:
                sql = f"SELECT {_DELIVERY_COLUMNS} FROM ({due} LIMIT ?)"
            due_at = now if due_by is None else due_by
            rows = [_delivery(r) for r in conn.execute(sql, (due_at, *args, limit))]
            if not rows:
                return []
            disabled = self._disabled_endpoints(conn)
            out, dead = [], []
            for row in rows:
                reason = disabled.get((row.subscriber_id, row.endpoint_key))
                if reason is None:
                    out.append(row)
                else:
                    dead.append((f"endpoint disabled: {reason}", now, row.id))
            conn.executemany("UPDATE webhook_deliveries SET status = 'failed', last_error = ?,"
                             " claimed_until = NULL, updated_at = ? WHERE id = ?", dead)
            conn.executemany("UPDATE webhook_deliveries SET claimed_until = ?, claimed_by = ?,"
                             " next_attempt_at = ? WHERE id = ?",
                             [(now + lease, holder, now + lease, row.id) for row in out])
            return out
        return await self._tx(unit)

    async def record_attempt(self, result: AttemptOutcome, now: float) -> tuple[str, str | None]:
        """Log one attempt and apply what follows from it: the delivery's new state
        and the endpoint's health (failing since when; disabled on 410 or after
        failing for `disable_after` seconds, failing its pending deliveries).

        Returns the final outcome (a retry for an endpoint that is disabled
        becomes `failed`) and the reason when this attempt disabled the endpoint."""
        def unit(conn: sqlite3.Connection) -> tuple[str, str | None]:
            a = result.attempt
            ep = (result.subscriber_id, result.endpoint_key)
            found = conn.execute(
                "SELECT failing_since, disabled_at, last_success_at, url FROM webhook_endpoints"
                " WHERE subscriber_id = ? AND endpoint_key = ?", ep).fetchone()
            if found is None:
                conn.execute("INSERT INTO webhook_endpoints (subscriber_id, endpoint_key, url)"
                             " VALUES (?, ?, ?)", (*ep, result.url))
                found = (None, None, None, result.url)
            elif found[3] != result.url:
                conn.execute("UPDATE webhook_endpoints SET url = ? WHERE subscriber_id = ?"
                             " AND endpoint_key = ?", (result.url, *ep))
            failing_since, disabled_at, last_success_at, _ = found
            change = endpoint_health(
                EndpointHealth(failing_since=failing_since, disabled_at=disabled_at,
                               last_success_at=last_success_at),
                outcome=a.outcome, endpoint_failure=result.endpoint_failure, at=a.at,
                disable_after=result.disable_after)
            outcome, disabled_now = change.outcome, change.disable
            if change.success_at is not None:
                conn.execute("UPDATE webhook_endpoints SET failing_since = NULL,"
                             " last_success_at = ? WHERE subscriber_id = ? AND endpoint_key = ?",
                             (change.success_at, *ep))
            if change.failing_since is not None:
                conn.execute("UPDATE webhook_endpoints SET failing_since = ?,"
                             " last_failure_at = ? WHERE subscriber_id = ? AND endpoint_key = ?",
                             (change.failing_since, a.at, *ep))
            if disabled_now is not None:
                conn.execute("UPDATE webhook_endpoints SET disabled_at = ?,"
                             " disabled_reason = ? WHERE subscriber_id = ?"
                             " AND endpoint_key = ?", (now, disabled_now, *ep))
                conn.execute("UPDATE webhook_deliveries SET status = 'failed',"
                             " last_error = ?, claimed_until = NULL, updated_at = ?"
                             " WHERE subscriber_id = ? AND endpoint_key = ?"
                             " AND status = 'pending' AND id != ?"
                             " AND (claimed_until IS NULL OR claimed_until < ?)",
                             (f"endpoint disabled: {disabled_now}", now, *ep, a.delivery_id,
                              now))
            status = {"delivered": "delivered", "retry": "pending"}.get(outcome, "failed")
            conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, at, outcome, status_code, latency_ms,"
                " response_body, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (a.delivery_id, a.at, outcome, a.status_code, a.latency_ms, a.response_body,
                 a.error))
            conn.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1,"
                " claimed_until = NULL, next_attempt_at = COALESCE(?, next_attempt_at),"
                " last_status_code = ?, last_error = ?, updated_at = ?,"
                " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
                " WHERE id = ?",
                (status, result.next_attempt_at if status == "pending" else None, a.status_code,
                 a.error, now, status, a.at, a.delivery_id))
            return outcome, disabled_now
        return await self._tx(unit)

    async def release_delivery_claims(self, holder: str | None = None) -> int:
        """Claims left by a stopped or killed worker, `holder`'s (every claim
        when None): due again at once. How many were released."""
        mine, args = (" AND claimed_by = ?", [holder]) if holder is not None else ("", [])
        return await self._tx(lambda conn: conn.execute(
            "UPDATE webhook_deliveries SET claimed_until = NULL,"
            " next_attempt_at = MIN(next_attempt_at, ?) WHERE status = 'pending'"
            f" AND claimed_until IS NOT NULL{mine}", (time.time(), *args)).rowcount)

    async def next_delivery_due(self, exclude: Sequence[tuple[str, str]] = ()) -> float | None:
        """When the next pending delivery (not leased, not excluded) comes due."""
        def unit(conn: sqlite3.Connection) -> float | None:
            skip, args = _exclude_endpoints(exclude)
            if not skip:  # leased rows carry their lease's end: MIN is an index lookup
                row = conn.execute("SELECT MIN(next_attempt_at) FROM webhook_deliveries"
                                   " INDEXED BY webhook_deliveries_due"
                                   " WHERE status = 'pending'").fetchone()
            else:
                row = conn.execute(
                    "SELECT MIN(next_attempt_at) FROM (SELECT * FROM webhook_deliveries"
                    " INDEXED BY webhook_deliveries_due WHERE status = 'pending'"
                    " ORDER BY next_attempt_at"
                    f" LIMIT {CLAIM_WINDOW}) WHERE 1 = 1{skip}", args).fetchone()
            return row[0] if row else None
        return await self._run(unit)

    async def delivery_queue_depth(self) -> int:
        return await self._run(lambda conn: conn.execute(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'").fetchone()[0])

    async def list_deliveries(self, *, status: str | None, subscriber_id: str | None,
                              endpoint_key: str | None, limit: int) -> list[DeliveryRow]:
        def unit(conn: sqlite3.Connection) -> list[DeliveryRow]:
            where, args = _where(status=status, subscriber_id=subscriber_id,
                                 endpoint_key=endpoint_key)
            rows = conn.execute(f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"
                                f" WHERE {where} ORDER BY seq DESC LIMIT ?",
                                (*args, limit)).fetchall()
            return [_delivery(r) for r in rows]
        return await self._run(unit)

    async def get_delivery(self, delivery_id: str
                           ) -> tuple[DeliveryRow, list[AttemptRow]] | None:
        def unit(conn: sqlite3.Connection) -> tuple[DeliveryRow, list[AttemptRow]] | None:
            row = conn.execute(f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"
                               " WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                return None
            attempts = [AttemptRow(delivery_id=r[0], at=r[1], outcome=r[2], status_code=r[3],
                                   latency_ms=r[4], response_body=r[5], error=r[6])
                        for r in conn.execute(
                            "SELECT delivery_id, at, outcome, status_code, latency_ms,"
                            " response_body, error FROM webhook_attempts"
                            " WHERE delivery_id = ? ORDER BY seq", (delivery_id,))]
            return _delivery(row), attempts
        return await self._run(unit)

    async def retry_delivery(self, delivery_id: str, now: float
                             ) -> tuple[str, DeliveryRow | None]:
        """Queue one delivery again now, with the same webhook-id and a fresh retry
        schedule: ("retried", row), ("pending", row) when it already is, or
        ("not_found", None)."""
        def unit(conn: sqlite3.Connection) -> tuple[str, DeliveryRow | None]:
            cur = conn.execute("UPDATE webhook_deliveries SET status = 'pending', attempts = 0,"
                               " next_attempt_at = ?, claimed_until = NULL, updated_at = ?"
                               " WHERE id = ? AND status != 'pending'",
                               (now, now, delivery_id))
            row = conn.execute(f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"
                               " WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                return "not_found", None
            return ("retried" if cur.rowcount else "pending"), _delivery(row)
        return await self._tx(unit)

    async def replay_deliveries(self, since: float, now: float, *,
                                subscriber_id: str | None = None,
                                endpoint_key: str | None = None) -> int:
        """Queue again every failed delivery created at or after `since`."""
        def unit(conn: sqlite3.Connection) -> int:
            where, args = _where(subscriber_id=subscriber_id, endpoint_key=endpoint_key)
            return conn.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0,"
                " next_attempt_at = ?, claimed_until = NULL, updated_at = ?"
                f" WHERE status = 'failed' AND created_at >= ? AND {where}",
                (now, now, since, *args)).rowcount
        return await self._tx(unit)

    async def list_endpoint_health(self) -> list[EndpointRow]:
        def unit(conn: sqlite3.Connection) -> list[EndpointRow]:
            counts: dict[tuple[str, str], dict[str, int]] = {}
            for sub, key, status, n in conn.execute(
                    "SELECT subscriber_id, endpoint_key, status, COUNT(*)"
                    " FROM webhook_deliveries WHERE status IN ('pending', 'failed')"
                    " GROUP BY subscriber_id, endpoint_key, status"):
                counts.setdefault((sub, key), {})[status] = n
            out = []
            for r in conn.execute("SELECT subscriber_id, endpoint_key, url, failing_since,"
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
        return await self._run(unit)

    async def enable_endpoint(self, endpoint_key: str, subscriber_id: str | None = None) -> int:
        """Enable an endpoint again (and forget its failing streak); how many were disabled."""
        def unit(conn: sqlite3.Connection) -> int:
            where, args = _where(endpoint_key=endpoint_key, subscriber_id=subscriber_id)
            return conn.execute("UPDATE webhook_endpoints SET disabled_at = NULL,"
                                " disabled_reason = NULL, failing_since = NULL"
                                f" WHERE disabled_at IS NOT NULL AND {where}", args).rowcount
        return await self._tx(unit)

    # ------------------------------------------------------------- dashboards

    async def search_registrations(self, *, number: str | None, locale: str | None,
                                   status: str | None, instance_id: int | None,
                                   limit: int) -> list[Registration]:
        def unit(conn: sqlite3.Connection) -> list[Registration]:
            where, args = _where(locale=locale, status=status, instance_id=instance_id)
            if number:
                where += r" AND number LIKE ? ESCAPE '\'"
                args.append("%" + like_escaped(number) + "%")
            rows = conn.execute(f"SELECT {_REG_COLUMNS} FROM registrations WHERE {where}"
                                " ORDER BY registered_at DESC LIMIT ?", (*args, limit)).fetchall()
            return [_registration(r) for r in rows]
        return await self._run(unit)

    async def search_outbound(self, *, subscriber_id: str | None, status: str | None,
                              error_code: int | None, instance_id: int | None,
                              limit: int) -> list[OutboundRow]:
        def unit(conn: sqlite3.Connection) -> list[OutboundRow]:
            where, args = _where(o__subscriber_id=subscriber_id, o__error_code=error_code,
                                 o__instance_id=instance_id)
            if status == "queued":  # a message being sent is still queued to its sender
                where += " AND o.status IN ('queued', 'sending')"
            elif status is not None:
                where += " AND o.status = ?"
                args.append(status)
            rows = conn.execute(f"SELECT {_OUTBOUND_COLUMNS} FROM {_OUTBOUND_FROM}"
                                f" WHERE {where} ORDER BY o.seq DESC LIMIT ?",
                                (*args, limit)).fetchall()
            return [_outbound(r) for r in rows]
        return await self._run(unit)

    async def activity(self, *, since: float, now: float,
                       buckets: int) -> list[InstanceActivity]:
        width = max(now - since, 1e-9) / buckets

        def counts(conn: sqlite3.Connection, table: str, at: str
                   ) -> dict[int, list[int]]:
            # Rows are numbered in the order they came (seq): find the first of the
            # stretch by bisection, so the count reads only the stretch, not the table.
            lo, hi = 1, (conn.execute(f"SELECT MAX(seq) FROM {table}").fetchone()[0] or 0) + 1
            while lo < hi:
                mid = (lo + hi) // 2
                row = conn.execute(f"SELECT {at} FROM {table} WHERE seq >= ? ORDER BY seq"
                                   " LIMIT 1", (mid,)).fetchone()
                if row is None or row[0] >= since:
                    hi = mid
                else:
                    lo = mid + 1
            out: dict[int, list[int]] = {}
            for instance, bucket, n in conn.execute(
                    f"SELECT instance_id, CAST((({at}) - ?) / ? AS INTEGER), COUNT(*)"
                    f" FROM {table} WHERE seq >= ? AND {at} >= ? AND {at} < ?"
                    " GROUP BY 1, 2", (since, width, lo, since, now)):
                out.setdefault(instance, [0] * buckets)[min(bucket, buckets - 1)] += n
            return out

        def unit(conn: sqlite3.Connection) -> list[InstanceActivity]:
            inbound = counts(conn, "inbound", "received_at")
            outbound = counts(conn, "outbound", "created_at")
            queues = {r[0]: (r[1], r[2]) for r in conn.execute(
                "SELECT instance_id, COUNT(*), MIN(created_at) FROM outbound"
                " WHERE status = 'queued' GROUP BY instance_id")}
            empty = (0,) * buckets
            return [InstanceActivity(instance_id=i, inbound=tuple(inbound.get(i, empty)),
                                     outbound=tuple(outbound.get(i, empty)),
                                     queued=queues.get(i, (0, None))[0],
                                     oldest_queued_at=queues.get(i, (0, None))[1])
                    for i in sorted({*inbound, *outbound, *queues})]
        return await self._run(unit)


def _exclude_endpoints(pairs: Sequence[tuple[str, str]]) -> tuple[str, list[Any]]:
    """` AND (subscriber_id, endpoint_key) NOT IN (VALUES ...)` for the pairs given."""
    if not pairs:
        return "", []
    values = ", ".join("(?, ?)" for _ in pairs)
    return (f" AND (subscriber_id, endpoint_key) NOT IN (VALUES {values})",
            [x for pair in pairs for x in pair])
