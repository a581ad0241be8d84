"""PostgreSQL: the webhook delivery queue (the webhook worker's port)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.effects import DeliveryDraft
from bot.store.models import (
    AttemptOutcome,
    DeliveryRow,
)
from bot.store.postgres.effects import PostgresEffects, Statement
from bot.store.postgres.pool import Conn
from bot.store.rows import (
    DELIVERY_COLUMNS,
    delivery_row,
)
from bot.store.rules import (
    CLAIM_WINDOW,
    EndpointHealth,
    delivery_status,
    disabled_error,
    disabled_error_sql,
    endpoint_health,
)

# A delivery's last_error when its endpoint (a row of `checked`) is disabled.
_DISABLED_ERROR_C = disabled_error_sql("c.disabled_reason")


# The first pending rows in order, by the partial index webhook_deliveries_due
# (`{}`: a further condition): what a claim looks at when endpoints are busy.
_WINDOW = ("SELECT id, subscriber_id, endpoint_key, next_attempt_at FROM webhook_deliveries"
           " WHERE status = 'pending'{} ORDER BY next_attempt_at LIMIT " + str(CLAIM_WINDOW))


def _not_busy(rows: str, subscribers: str, keys: str) -> str:
    """SQL: the row `rows` is of no busy endpoint (the parameters `subscribers`
    and `keys`, text arrays, pair up)."""
    return (f"NOT EXISTS (SELECT 1 FROM unnest({subscribers}::text[], {keys}::text[]) AS busy"
            f" (subscriber_id, endpoint_key) WHERE busy.subscriber_id = {rows}.subscriber_id"
            f" AND busy.endpoint_key = {rows}.endpoint_key)")


class PostgresDeliveries(PostgresEffects):
    """The `DeliveryQueue` port on PostgreSQL (its reads shared: bot/store/queries.py)."""

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
        # With endpoints busy, only the window's rows are looked at (rules.py
        # CLAIM_WINDOW); the rows it picks are locked and checked again.
        window = _WINDOW.format(" AND next_attempt_at <= $1")
        among = (f"id IN (SELECT w.id FROM ({window}) AS w WHERE {_not_busy('w', '$2', '$3')})"
                 if exclude else _not_busy("webhook_deliveries", "$2", "$3"))
        rows = await self._statement(lambda conn: conn.fetch(
            f"WITH due AS (SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"
            f" WHERE status = 'pending' AND next_attempt_at <= $1 AND {among}"
            " ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED),"
            " checked AS (SELECT due.*, e.disabled_reason, e.subscriber_id IS NOT NULL AS dead"
            " FROM due LEFT JOIN webhook_endpoints e ON e.subscriber_id = due.subscriber_id"
            " AND e.endpoint_key = due.endpoint_key AND e.disabled_at IS NOT NULL),"
            " failed AS (UPDATE webhook_deliveries d SET status = 'failed', last_error ="
            f" {_DISABLED_ERROR_C}, claimed_until = NULL, claimed_by = NULL,"
            " updated_at = $5 FROM checked c WHERE d.id = c.id AND c.dead),"
            " claimed AS (UPDATE webhook_deliveries d SET claimed_until = $6, claimed_by = $7,"
            " next_attempt_at = $6 FROM checked c WHERE d.id = c.id AND NOT c.dead)"
            f" SELECT {DELIVERY_COLUMNS} FROM checked WHERE NOT dead ORDER BY next_attempt_at",
            now if due_by is None else due_by, [s for s, _ in exclude],
            [e for _, e in exclude], limit, now, now + lease, holder or self.worker_id))
        return [delivery_row(r) for r in rows]

    async def record_attempts(self, results: Sequence[AttemptOutcome],
                              now: float) -> list[tuple[str, str | None]]:
        """Log attempts, in order, and apply what follows from each (see
        SqliteStore.record_attempts), on one connection. Each takes two
        statements and no transaction: the endpoint's health is read, then
        every write goes in one statement that first locks the endpoint's row
        if its health is still what was read (else nothing is written, and it
        starts over). So attempts recorded at once by several processes update
        its health one after another, as if the row were locked from the read,
        without a BEGIN and a COMMIT."""
        async def unit() -> list[tuple[str, str | None]]:
            recorded = []
            async with self._pool.acquire() as conn:
                for result in results:
                    while (done := await self._record_attempt(conn, result, now)) is None:
                        pass  # another attempt changed the endpoint's health meanwhile
                    recorded.append(done)
            return recorded
        return await self._spawn(unit())

    @staticmethod
    async def _record_attempt(conn: Conn, result: AttemptOutcome,
                              now: float) -> tuple[str, str | None] | None:
        """One attempt, or None when the endpoint's health moved under it."""
        a = result.attempt
        ep = (result.subscriber_id, result.endpoint_key)
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
        st = Statement()
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
                f" {st.arg(disabled_error(disabled_now), 'text')},"
                f" claimed_until = NULL, claimed_by = NULL, updated_at = {at}"
                f" WHERE {endpoint} AND status = 'pending' AND id <> {delivery}"
                f" AND (claimed_until IS NULL OR claimed_until < {at}) AND {gate}"))
        st.step("attempt", (
            "INSERT INTO webhook_attempts (delivery_id, at, outcome, status_code,"
            f" latency_ms, response_body, error) SELECT {delivery},"
            f" {st.arg(a.at, 'float8')}, {st.arg(outcome, 'text')},"
            f" {st.arg(a.status_code, 'integer')}, {st.arg(a.latency_ms, 'float8')},"
            f" {st.arg(a.response_body, 'text')}, {st.arg(a.error, 'text')} WHERE {gate}"))
        final = delivery_status(outcome)
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

    async def release_delivery_claims(self, holder: str | None = None) -> int:
        """`holder`'s delivery claims (this store's worker id's by default): due
        again at once; other processes' claims are left to their lease."""
        return await self._release("webhook_deliveries", "pending", holder)

    async def next_delivery_due(self, exclude: Sequence[tuple[str, str]] = ()) -> float | None:
        """When the next pending delivery (not leased, not excluded) comes due:
        leased rows carry their lease's end."""
        if not exclude:  # the partial index's first entry
            return await self._pool.fetchval(
                "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'")
        return await self._pool.fetchval(  # as a claim looks: the window only
            f"SELECT MIN(w.next_attempt_at) FROM ({_WINDOW.format('')}) AS w"
            f" WHERE {_not_busy('w', '$1', '$2')}",
            [s for s, _ in exclude], [e for _, e in exclude])
