"""SQLite: the reports whose SQL is SQLite's own (an index named, a bisection)."""

from __future__ import annotations

import sqlite3

from bot.store.models import (
    CostRow,
    InstanceActivity,
    NoticeRow,
)
from bot.store.queries import QUERIES
from bot.store.rows import NOTICE_COLUMNS, instance_activity
from bot.store.sqlite.effects import SqliteEffects


class SqliteReports(SqliteEffects):
    """`costs` and `activity` of the `Queries` port on SQLite."""

    async def list_notices(self, *, provider: str | None = None, kind: str | None = None,
                           limit: int = 100) -> list[NoticeRow]:
        def unit(conn: sqlite3.Connection) -> list[NoticeRow]:
            return [NoticeRow(seq=r[0], provider=r[1], kind=r[2], instance_id=r[3], event=r[4],
                              detail=r[5], at=r[6], received_at=r[7]) for r in conn.execute(
                f"SELECT {NOTICE_COLUMNS} FROM provider_notices"
                " WHERE (? IS NULL OR provider = ?) AND (? IS NULL OR kind = ?)"
                " ORDER BY seq DESC LIMIT ?", (provider, provider, kind, kind, limit))]
        return await self._lookup(unit)

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
            queued = conn.execute(QUERIES["queued_by_instance"]).fetchall()
            return instance_activity(inbound, outbound, queued, buckets)
        return await self._run(unit)
