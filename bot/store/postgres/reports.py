"""PostgreSQL: the reports whose SQL is PostgreSQL's own."""

from __future__ import annotations

from bot.store.models import (
    CostRow,
    InstanceActivity,
    NoticeRow,
)
from bot.store.postgres.effects import PostgresEffects
from bot.store.queries import QUERIES
from bot.store.rows import NOTICE_COLUMNS, instance_activity


class PostgresReports(PostgresEffects):
    """`costs` and `activity` of the `Queries` port on PostgreSQL."""

    async def list_notices(self, *, provider: str | None = None, kind: str | None = None,
                           limit: int = 100) -> list[NoticeRow]:
        rows = await self._pool.fetch(
            f"SELECT {NOTICE_COLUMNS} FROM provider_notices"
            " WHERE ($1::text IS NULL OR provider = $1) AND ($2::text IS NULL OR kind = $2)"
            " ORDER BY seq DESC LIMIT $3", provider, kind, limit)
        return [NoticeRow(seq=r[0], provider=r[1], kind=r[2], instance_id=r[3], event=r[4],
                          detail=r[5], at=r[6], received_at=r[7]) for r in rows]

    async def costs(self) -> list[CostRow]:
        rows = await self._pool.fetch(
            "SELECT subscriber_id, pricing_category, billable, COUNT(*) FROM outbound"
            " WHERE pricing_category IS NOT NULL"
            " GROUP BY subscriber_id, pricing_category, billable"
            " ORDER BY subscriber_id NULLS FIRST, pricing_category, billable")
        return [CostRow(subscriber_id=r[0], category=r[1],
                        billable=None if r[2] is None else bool(r[2]), messages=r[3])
                for r in rows]

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
        queued = await self._pool.fetch(QUERIES["queued_by_instance"])
        return instance_activity(inbound, outbound, queued, buckets)
