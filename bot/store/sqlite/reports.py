"""SQLite: the reports whose SQL is SQLite's own (an index named, a bisection)."""

from __future__ import annotations

import sqlite3

from bot.store.models import (
    CostRow,
    InstanceActivity,
)
from bot.store.sqlite.effects import SqliteEffects


class SqliteReports(SqliteEffects):
    """`costs` and `activity` of the `Queries` port on SQLite."""

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
