"""The shared queries' connector on SQLite: each call is one unit of work on
the store's connection (`:name` parameters are SQLite's own style)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence

from bot.store.protocol import Conflict, Unchanged
from bot.store.queries import Result, Step, Wakes
from bot.store.wakeups import Queue

# How the engine runs a unit (`_run` for a read, `_tx` for a write).
Runner = Callable[[Callable[[sqlite3.Connection], list[Result]]], Awaitable[list[Result]]]


def _run(conn: sqlite3.Connection, steps: Sequence[Step]) -> list[Result]:
    results = []
    for step in steps:
        try:
            cursor = conn.execute(step.sql, step.params)
        except sqlite3.IntegrityError as exc:  # the unit's savepoint is rolled back
            raise Conflict(str(exc)) from exc
        rows = cursor.fetchall()
        if step.must_change and cursor.rowcount <= 0:
            raise Unchanged(step.sql.split(None, 3)[:3])
        results.append(Result(rows, max(cursor.rowcount, 0)))
    return results


class SqliteConnector:
    def __init__(self, read: Runner, write: Runner,
                 notify: Callable[[sqlite3.Connection, Queue], None]) -> None:
        self._read = read
        self._write = write
        self._notify = notify

    async def read(self, steps: Sequence[Step]) -> list[Result]:
        return await self._read(lambda conn: _run(conn, steps))

    async def write(self, steps: Sequence[Step], wakes: Wakes | None = None) -> list[Result]:
        def unit(conn: sqlite3.Connection) -> list[Result]:
            results = _run(conn, steps)
            if wakes is not None and any(result.count for result in results):
                self._notify(conn, wakes)
            return results
        return await self._write(unit)
