"""PostgreSQL: the webhook delivery queue (the webhook worker's port)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Any, NamedTuple

from bot.effects import DeliveryDraft
from bot.store.models import (
    AttemptOutcome,
    DeliveryRow,
)
from bot.store.postgres.batches import Batches
from bot.store.postgres.effects import PostgresEffects
from bot.store.postgres.groups import group_heads, group_steps
from bot.store.postgres.pool import Conn
from bot.store.rows import (
    DELIVERY_COLUMNS,
    delivery_row,
)
from bot.store.rules import (
    DISABLED_DEFAULT,
    DISABLED_PREFIX,
    EndpointHealth,
    delivery_status,
    disabled_error,
    endpoint_health,
)

# Groups of pending deliveries: endpoints (the index webhook_deliveries_group).
_ENDPOINT = ("subscriber_id", "endpoint_key")
_STEPS = group_steps("webhook_deliveries", "pending", _ENDPOINT)


def _not_busy(rows: str, subscribers: str, keys: str) -> str:
    """SQL: the row `rows` is of no busy endpoint (the parameters `subscribers`
    and `keys`, text arrays, pair up)."""
    return (f"NOT EXISTS (SELECT 1 FROM unnest({subscribers}::text[], {keys}::text[]) AS busy"
            f" (subscriber_id, endpoint_key) WHERE busy.subscriber_id = {rows}.subscriber_id"
            f" AND busy.endpoint_key = {rows}.endpoint_key)")


_FIRSTS = group_heads("webhook_deliveries", "pending", _ENDPOINT, "id",
                      _not_busy("grp", "$1", "$2"), None, "1")

# A claim (pg_migrations/0017_webhook_functions.sql): $1 due by, $2 and $3 the
# busy endpoints, $4 the limit, $5 now, $6 the lease's end, $7 the holder, then
# how a disabled endpoint's rows are failed. Next-due skipping busy endpoints
# ($1 and $2 the busy endpoints): the other endpoints' earliest.
CLAIM = (f"SELECT {DELIVERY_COLUMNS} FROM wagate_claim_deliveries($1, $2, $3, $4, $5, $6, $7,"
         f" '{DISABLED_PREFIX}', '{DISABLED_DEFAULT}')")
NEXT_DUE_SKIPPING = f"WITH RECURSIVE {_STEPS} SELECT MIN(h.next_attempt_at) FROM ({_FIRSTS}) AS h"


class _Call(NamedTuple):
    """One call of record_attempts: its attempts and when it was made."""

    results: tuple[AttemptOutcome, ...]
    now: float


@dataclass(slots=True)
class _Health:
    """An endpoint's row (its health, its url) as the attempts so far left it."""

    failing_since: float | None
    disabled_at: float | None
    last_success_at: float | None
    last_failure_at: float | None
    disabled_reason: str | None
    url: str


@dataclass(slots=True)
class _Delivery:
    """A delivery's writes as the attempts so far left them (None: kept)."""

    endpoint: tuple[str, str]
    status: str = "pending"
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    updated_at: float = 0.0
    next_attempt_at: float | None = None
    delivered_at: float | None = None


_LOCK_ENDPOINTS = (
    "SELECT e.subscriber_id, e.endpoint_key, e.failing_since, e.disabled_at,"
    " e.last_success_at, e.last_failure_at, e.disabled_reason, e.url"
    " FROM webhook_endpoints e JOIN unnest($1::text[], $2::text[]) AS w (sub, key)"
    " ON e.subscriber_id = w.sub AND e.endpoint_key = w.key"
    " ORDER BY e.subscriber_id, e.endpoint_key FOR UPDATE OF e")
_INSERT_ENDPOINTS = (
    "INSERT INTO webhook_endpoints (subscriber_id, endpoint_key, url)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS w (sub, key, url)"
    " ORDER BY sub, key ON CONFLICT DO NOTHING")
# A batch's writes, whatever its number of attempts (pg_migrations/0017): the
# endpoints whose row changed, the pending deliveries of those it disabled
# (none of the batch's, whose writes it makes itself), the attempts in order,
# the deliveries attempted.
WRITE_ATTEMPTS = f"SELECT wagate_record_attempts({', '.join(f'${i}' for i in range(1, 28))})"


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` columns (arrays for unnest)."""
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


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
        rows = await self._statement(lambda conn: conn.fetch(
            CLAIM, now if due_by is None else due_by, [s for s, _ in exclude],
            [e for _, e in exclude], limit, now, now + lease, holder or self.worker_id))
        return [delivery_row(r) for r in rows]

    async def record_attempts(self, results: Sequence[AttemptOutcome],
                              now: float) -> list[tuple[str, str | None]]:
        """Log attempts, in order, and apply what follows from each (see
        SqliteStore.record_attempts). Calls made while one is being written go
        together in the next (group commit: the webhook worker records each
        HTTP delivery's attempt on its own, many at once), in one transaction
        of four round trips whatever their number: the endpoints' rows locked
        and their health read once, each attempt applied in Python after the
        one before it, every write in one statement. Attempts recorded at once
        by several processes thus update an endpoint's health one after
        another."""
        if not results:
            return []
        return await self._attempts.add(_Call(tuple(results), now))

    @functools.cached_property
    def _attempts(self) -> Batches[_Call, list[tuple[str, str | None]]]:
        return Batches(self._write_attempts, self._start)

    async def _write_attempts(self, calls: list[_Call]) -> list[list[tuple[str, str | None]]]:
        recorded = await self._tx(lambda conn: self._record_attempts(
            conn, [(result, call.now) for call in calls for result in call.results]))
        answers, start = [], 0
        for call in calls:  # each call's own, in its order
            answers.append(recorded[start:start + len(call.results)])
            start += len(call.results)
        return answers

    async def _record_attempts(self, conn: Conn, results: list[tuple[AttemptOutcome, float]]
                               ) -> list[tuple[str, str | None]]:
        """Attempts (each with the `now` it was recorded at) in the transaction
        open on `conn`."""
        endpoints = sorted({(r.subscriber_id, r.endpoint_key): r.url
                            for r, _ in results}.items())
        health = await self._lock_endpoints(conn, endpoints)
        read = {ep: astuple(h) for ep, h in health.items()}
        deliveries: dict[str, _Delivery] = {}
        others: list[tuple[str, str, str, float]] = []
        recorded = []
        for result, now in results:
            a, ep = result.attempt, (result.subscriber_id, result.endpoint_key)
            h = health[ep]
            change = endpoint_health(
                EndpointHealth(failing_since=h.failing_since, disabled_at=h.disabled_at,
                               last_success_at=h.last_success_at),
                outcome=a.outcome, endpoint_failure=result.endpoint_failure, at=a.at,
                disable_after=result.disable_after)
            h.url = result.url
            if change.success_at is not None:
                h.failing_since, h.last_success_at = None, change.success_at
            if change.failing_since is not None:
                h.failing_since, h.last_failure_at = change.failing_since, a.at
            final = delivery_status(change.outcome)
            d = deliveries.setdefault(a.delivery_id, _Delivery(ep))
            d.status, d.attempts, d.updated_at = final, d.attempts + 1, now
            d.status_code, d.error = a.status_code, a.error
            if final == "pending" and result.next_attempt_at is not None:
                d.next_attempt_at = result.next_attempt_at
            if final == "delivered":
                d.delivered_at = a.at
            if change.disable is not None:
                h.disabled_at, h.disabled_reason = now, change.disable
                error = disabled_error(change.disable)
                others.append((*ep, error, now))
                # The endpoint's other pending deliveries fail: in the database
                # (`others` below), and those recorded before it in this batch
                # here, so that each row is written once.
                for other_id, other in deliveries.items():
                    if other.endpoint == ep and other.status == "pending" \
                            and other_id != a.delivery_id:
                        other.status, other.error, other.updated_at = "failed", error, now
            recorded.append((change.outcome, change.disable))
        changed = [(*ep, *astuple(h)) for ep, h in health.items() if astuple(h) != read[ep]]
        await conn.execute(WRITE_ATTEMPTS, *_columns(changed, 8), *_columns(others, 4),
                           *_columns([(r.attempt.delivery_id, r.attempt.at, outcome,
                                       r.attempt.status_code, r.attempt.latency_ms,
                                       r.attempt.response_body, r.attempt.error)
                                      for (r, _), (outcome, _) in zip(results, recorded,
                                                                      strict=True)], 7),
                           *_columns([(i, d.status, d.attempts, d.status_code, d.error,
                                       d.updated_at, d.next_attempt_at, d.delivered_at)
                                      for i, d in deliveries.items()], 8))
        return recorded

    @staticmethod
    async def _lock_endpoints(conn: Conn, endpoints: list[tuple[tuple[str, str], str]]
                              ) -> dict[tuple[str, str], _Health]:
        """The endpoints' rows locked (in one order, so that two processes never
        wait on each other) and their health; an endpoint's first attempt makes
        its row."""
        subs, keys = [s for (s, _), _ in endpoints], [k for (_, k), _ in endpoints]
        while True:
            rows = await conn.fetch(_LOCK_ENDPOINTS, subs, keys)
            health = {(r[0], r[1]): _Health(*r[2:]) for r in rows}
            missing = [(ep, url) for ep, url in endpoints if ep not in health]
            if not missing:
                return health
            # Made outside this transaction, holding no lock: making a row may
            # wait for another process making it, never while holding one.
            await conn.execute("ROLLBACK")
            await conn.execute(_INSERT_ENDPOINTS, *_columns(
                [(s, k, url) for (s, k), url in missing], 3))
            await conn.execute("BEGIN")

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
        return await self._pool.fetchval(  # the other endpoints' earliest
            NEXT_DUE_SKIPPING, [s for s, _ in exclude], [e for _, e in exclude])
