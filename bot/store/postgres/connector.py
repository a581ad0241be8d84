"""The shared queries' connector on PostgreSQL: `:name` parameters numbered
`$n` (once per query text), reads on one pooled connection, writes in one
transaction that wakes the workers of what it queued once committed."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from bot.store.protocol import Conflict, Unchanged
from bot.store.queries import Result, Step, Wakes, numbered
from bot.store.wakeups import Queue

Conn = asyncpg.Connection
# How the pool runs a unit: `_read`, `_tx` (a transaction) or `_statement` (one
# statement, committed alone).
Runner = Callable[[Callable[[Conn], Awaitable[list[Result]]]], Awaitable[list[Result]]]

# Every query text the shared queries make: the named ones, with the few
# combinations of optional filters each can take.
_numbered = functools.lru_cache(maxsize=512)(numbered)


async def _run(conn: Conn, steps: Sequence[Step]) -> list[Result]:
    results = []
    for step in steps:
        sql, arguments = _numbered(step.sql)
        args = arguments(**step.params)
        if sql.lstrip().startswith(("UPDATE", "INSERT", "DELETE")):
            try:
                status = await conn.execute(sql, *args)
            except asyncpg.UniqueViolationError as exc:  # the unit is rolled back
                raise Conflict(str(exc)) from exc
            count = int(status.rsplit(" ", 1)[-1])
            if step.must_change and not count:
                raise Unchanged(sql.split(None, 3)[:3])
            results.append(Result([], count))
        else:
            results.append(Result(list(await conn.fetch(sql, *args)), 0))
    return results


class PostgresConnector:
    def __init__(self, *, read: Runner, tx: Runner, statement: Runner,
                 notify: Callable[[Conn, Queue], None]) -> None:
        self._read = read
        self._tx = tx
        self._statement = statement
        self._notify = notify

    async def read(self, steps: Sequence[Step]) -> list[Result]:
        return await self._read(lambda conn: _run(conn, steps))

    async def write(self, steps: Sequence[Step], wakes: Wakes | None = None) -> list[Result]:
        async def unit(conn: Conn) -> list[Result]:
            results = await _run(conn, steps)
            if wakes is not None and any(result.count for result in results):
                self._notify(conn, wakes)
            return results
        if len(steps) == 1 and wakes is None:  # atomic alone: no BEGIN and COMMIT
            return await self._statement(unit)
        return await self._tx(unit)
