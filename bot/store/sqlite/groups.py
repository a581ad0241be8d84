"""SQLite: due rows by group (a webhook endpoint, an outbound number), for
claims that skip busy groups at a cost independent of their backlogs.

SQLite has no LATERAL: on the writer thread the loose index scan runs as a
loop of tiny indexed queries on a queue's partial index on (group,
next_attempt_at): seek the first group, then the next one past it, and take
each group's earliest rows from the same index. A busy group costs one seek
however many rows it holds, and every other group's due rows are still found,
oldest first."""

from __future__ import annotations

import heapq
import itertools
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from typing import Any


def _groups(conn: sqlite3.Connection, source: str, status: str,
            keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """Every group (`keys`, in index order) with rows of `status` in `source`
    (a table INDEXED BY its group index)."""
    columns = ", ".join(keys)
    step = (f"SELECT {columns} FROM {source} WHERE status = '{status}'{{}}"
            f" ORDER BY {columns}, next_attempt_at LIMIT 1")
    # The next group past one: the same leading keys and a greater next key,
    # trying the last key first. Each is an index seek; a row value `(a, b) >
    # (?, ?)` is not (SQLite seeks on `a` alone and walks the rest).
    past = [step.format("".join(f" AND {key} = ?" for key in keys[:i]) + f" AND {keys[i]} > ?")
            for i in reversed(range(len(keys)))]
    row = conn.execute(step.format("")).fetchone()
    while row is not None:
        yield tuple(row)
        last, row = tuple(row), None
        for i, sql in zip(reversed(range(len(keys))), past, strict=True):
            if (row := conn.execute(sql, last[:i + 1]).fetchone()) is not None:
                break


def earliest(conn: sqlite3.Connection, source: str, status: str, keys: Sequence[str],
             columns: str, busy: Collection[tuple[Any, ...]], due: float | None,
             limit: int) -> list[tuple[Any, ...]]:
    """Up to `limit` rows (`columns`) of `status` (due by `due` when given) of
    the groups not `busy`, oldest first (then in insertion order): each such
    group's earliest, merged."""
    match = " AND ".join(f"{key} = ?" for key in keys)
    by = "" if due is None else " AND next_attempt_at <= ?"
    sql = (f"SELECT next_attempt_at, rowid, {columns} FROM {source}"
           f" WHERE status = '{status}' AND {match}{by} ORDER BY next_attempt_at LIMIT ?")
    heads = [conn.execute(sql, (*group, *(() if due is None else (due,)), limit)).fetchall()
             for group in _groups(conn, source, status, keys) if group not in busy]
    return [row[2:] for row in itertools.islice(heapq.merge(*heads), limit)]
