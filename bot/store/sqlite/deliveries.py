"""SQLite: the webhook delivery queue (the webhook worker's port)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from bot.effects import DeliveryDraft
from bot.store.models import (
    AttemptOutcome,
    DeliveryRow,
)
from bot.store.rows import DELIVERY_COLUMNS as _DELIVERY_COLUMNS
from bot.store.rows import delivery_row as _delivery
from bot.store.rules import (
    EndpointHealth,
    delivery_status,
    disabled_error,
    endpoint_health,
)
from bot.store.sqlite.effects import SqliteEffects
from bot.store.sqlite.groups import earliest

# Pending deliveries by endpoint, then due time.
_BY_ENDPOINT = "webhook_deliveries INDEXED BY webhook_deliveries_group"
_ENDPOINT = ("subscriber_id", "endpoint_key")


class SqliteDeliveries(SqliteEffects):
    """The `DeliveryQueue` port on SQLite (its reads shared: bot/store/queries.py)."""

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
            due_at = now if due_by is None else due_by
            if exclude:  # each other endpoint's earliest: a busy one's backlog is never walked
                rows = [_delivery(r) for r in earliest(
                    conn, _BY_ENDPOINT, "pending", _ENDPOINT, _DELIVERY_COLUMNS,
                    {tuple(pair) for pair in exclude}, due_at, limit)]
            else:
                # INDEXED BY: without statistics the planner prefers the status
                # index and sorts every pending row for each claim.
                rows = [_delivery(r) for r in conn.execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries"
                    " INDEXED BY webhook_deliveries_due WHERE status = 'pending'"
                    " AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                    (due_at, limit))]
            if not rows:
                return []
            disabled = self._disabled_endpoints(conn)
            out, dead = [], []
            for row in rows:
                reason = disabled.get((row.subscriber_id, row.endpoint_key))
                if reason is None:
                    out.append(row)
                else:
                    dead.append((reason, now, row.id))
            conn.executemany("UPDATE webhook_deliveries SET status = 'failed', last_error = ?,"
                             " claimed_until = NULL, updated_at = ? WHERE id = ?", dead)
            conn.executemany("UPDATE webhook_deliveries SET claimed_until = ?, claimed_by = ?,"
                             " next_attempt_at = ? WHERE id = ?",
                             [(now + lease, holder, now + lease, row.id) for row in out])
            return out
        return await self._tx(unit)

    async def record_attempts(self, results: Sequence[AttemptOutcome],
                              now: float) -> list[tuple[str, str | None]]:
        """Log attempts, in order and in one write, and apply what follows from
        each: the delivery's new state and the endpoint's health (failing since
        when; disabled on 410 or after failing for `disable_after` seconds,
        failing its pending deliveries).

        Returns, for each, the final outcome (a retry for an endpoint that is
        disabled becomes `failed`) and the reason when it disabled the endpoint."""
        return await self._tx(lambda conn: [self._record_attempt(conn, r, now) for r in results])

    @staticmethod
    def _record_attempt(conn: sqlite3.Connection, result: AttemptOutcome,
                        now: float) -> tuple[str, str | None]:
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
                         (disabled_error(disabled_now), now, *ep, a.delivery_id,
                          now))
        status = delivery_status(outcome)
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
            if exclude:  # the other endpoints' first rows
                firsts = earliest(conn, _BY_ENDPOINT, "pending", _ENDPOINT, "next_attempt_at",
                                  {tuple(pair) for pair in exclude}, None, 1)
                return firsts[0][0] if firsts else None
            # Leased rows carry their lease's end: MIN is an index lookup.
            row = conn.execute("SELECT MIN(next_attempt_at) FROM webhook_deliveries"
                               " INDEXED BY webhook_deliveries_due"
                               " WHERE status = 'pending'").fetchone()
            return row[0] if row else None
        return await self._run(unit)
