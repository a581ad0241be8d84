"""SQLite's engine: one connection owned by one thread, WAL, versioned
migrations, and the group-commit writer every unit of work goes through."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bot.store.sqlite.connector import SqliteConnector
from bot.store.wakeups import Queue, Wakeups

T = TypeVar("T")

def load_migrations() -> list[str]:
    """The schema's history: `migrations/NNNN_name.sql`, applied in order.

    Append-only: a released migration is never edited; a change is a new file.
    """
    folder = Path(__file__).parent.parent / "migrations"
    files = sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return [path.read_text(encoding="utf-8") for path in files]


MIGRATIONS = load_migrations()

MAX_BATCH = 512


@dataclass(slots=True)
class _Unit:
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    future: asyncio.Future[Any]


class _Thread:
    """The one thread the writer's connection lives on: it runs the functions
    sent to it one after another and hands each result back to the event loop.
    (What aiosqlite does; a plain queue and `call_soon_threadsafe` cost less
    CPU per hop than an executor's futures: 47 against 96 µs, measured.)"""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[asyncio.Future[Any], Callable[..., Any],
                                            tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sqlite-store", daemon=True)
        self._thread.start()
        self.stopped = False

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        if self.stopped:  # nothing would ever answer
            raise sqlite3.ProgrammingError("the SQLite store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((future, fn, args))
        return future

    def stop(self) -> None:
        """End the thread once the functions sent before have run."""
        if not self.stopped:
            self.stopped = True
            self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            try:
                outcome = (True, fn(*args))
            except BaseException as exc:
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits
                future.get_loop().call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return  # the caller went away
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class SqliteEngine:
    """The embedded store's engine: every unit of work runs through `_run`,
    `_lookup`, `_tx` or `_tx_urgent`."""

    # One process serves a SQLite file: any claim found at start is a dead
    # process's, whoever holds it.
    single_process = True

    def __init__(self, db: sqlite3.Connection, thread: _Thread, path: str) -> None:
        self._db = db
        # The one thread `_db` is used on: units run there, off the event loop.
        self._thread = thread
        self.path = path
        self.connector = SqliteConnector(self._run, self._tx, self._notify)
        self._reader: sqlite3.Connection | None = None
        self._pending: list[_Unit] = []
        self._urgent: list[_Unit] = []  # units that jump the queue (see _tx_urgent)
        self._drainer: asyncio.Task[None] | None = None
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._pace: dict[int, float] = {}  # instance -> next free send slot (monotonic)
        self._wakeups = Wakeups()
        # The queues the running write unit filled: touched on the writer's
        # thread only, while a batch runs (see `_run_batch`).
        self._filling: set[Queue] = set()

    async def on_work(self, queue: Queue, wake: Callable[[], None]) -> None:
        """Call `wake` once a unit that queued work on `queue` has committed (the
        only process serving the file is the only one queuing)."""
        self._wakeups.add(queue, wake)

    def _notify(self, conn: sqlite3.Connection, queue: Queue) -> None:
        """The running unit (on the writer's thread) filled `queue`: its workers
        are woken once the unit's batch has committed, not if the unit is
        rolled back."""
        self._filling.add(queue)

    async def reserve_pace(self, instance_id: int, interval: float, count: int = 1) -> float:
        """One process sends for the file, so the pace lives in memory: exact,
        and no write per send."""
        now = time.monotonic()
        slot = max(now, self._pace.get(instance_id, 0.0))
        self._pace[instance_id] = slot + interval * count
        return slot - now

    @classmethod
    async def open(cls: type[E], path: str) -> E:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        thread = _Thread()
        try:
            db = await thread.run(_connect, path)
        except BaseException:
            thread.stop()
            raise
        store = cls(db, thread, path)
        try:
            await store._on_thread(store._setup, db)
        except BaseException:
            await store.close()
            raise
        # A second connection to ":memory:" or "" (a private temporary file)
        # would open another, empty database: those read through the writer.
        if path not in ("", ":memory:"):
            store._reader = sqlite3.connect(path, isolation_level=None)
            store._reader.execute("PRAGMA query_only=ON")
            store._reader.execute("PRAGMA busy_timeout=0")
        return store

    def _on_thread(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` on the connection's thread: one hop there and back."""
        return self._thread.run(fn, *args)

    async def settled(self) -> None:
        """Wait until every unit queued so far has run (and committed)."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)

    async def close(self) -> None:
        if self._thread.stopped:
            return  # closed already (as aiosqlite's close, a second one is a no-op)
        await self.settled()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        try:
            await self._on_thread(self._db.close)
        finally:
            self._thread.stop()

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
                results, filled = await self._on_thread(self._run_batch, self._db, batch)
            except BaseException as exc:  # the connection itself failed
                results, filled = [(False, exc)] * len(batch), set()
            self._wakeups.call(filled)  # committed: the work is there to claim
            for unit, (ok, value) in zip(batch, results, strict=True):
                if unit.future.done():
                    continue  # the caller went away; the work stands (at-least-once)
                if ok:
                    unit.future.set_result(value)
                else:
                    unit.future.set_exception(value)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Unit]
                   ) -> tuple[list[tuple[bool, Any]], set[Queue]]:
        """Each unit's result, and the queues the committed ones filled."""
        writes = any(unit.write for unit in batch)
        results: list[tuple[bool, Any]] = []
        filled: set[Queue] = set()
        try:
            if writes:
                conn.execute("BEGIN IMMEDIATE")
            for unit in batch:
                if unit.write:
                    conn.execute("SAVEPOINT unit")
                self._filling = set()
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
                    filled |= self._filling
                results.append((True, value))
            if writes:
                conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(False, exc)] * len(batch), set()
        return results, filled

    @staticmethod
    def _setup(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a 200 promises the message survives a power cut, not just a
        # crash of this process; group commit spreads the fsync over a batch.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        version = _schema_version(conn)
        if version > len(MIGRATIONS):
            raise RuntimeError(f"database schema {version} is newer than this wagate "
                               f"({len(MIGRATIONS)}); upgrade wagate")
        if version == len(MIGRATIONS):
            return  # up to date: no write, so no wait on another process's
        # Every migration a database lacks in one transaction: an upgrade is all
        # or nothing, and a new database costs one commit (one fsync), not one
        # per migration.
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            for script in MIGRATIONS[version:]:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            if version < len(MIGRATIONS):
                conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())


E = TypeVar("E", bound=SqliteEngine)


def _schema_version(conn: sqlite3.Connection) -> int:
    """The database's schema version, 0 for a new one (read without a lock)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                    " AND name = 'schema_version'").fetchone() is None:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return row[0] if row else 0


def _connect(path: str) -> sqlite3.Connection:
    """The writer's connection, opened on the thread that will use it;
    transactions begun by hand (BEGIN IMMEDIATE, in `_run_batch`)."""
    return sqlite3.connect(path, isolation_level=None)
