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
from bot.store.postgres.groups import group_heads, group_steps, still_due
from bot.store.postgres.pool import Conn
from bot.store.rows import (
    DELIVERY_COLUMNS,
    delivery_row,
)
from bot.store.rules import (
    EndpointHealth,
    delivery_status,
    disabled_error,
    disabled_error_sql,
    endpoint_health,
)

# A delivery's last_error when its endpoint (a row of `checked`) is disabled.
_DISABLED_ERROR_C = disabled_error_sql("c.disabled_reason")


# Groups of pending deliveries: endpoints (the index webhook_deliveries_group).
_ENDPOINT = ("subscriber_id", "endpoint_key")
_STEPS = group_steps("webhook_deliveries", "pending", _ENDPOINT)


def _not_busy(rows: str, subscribers: str, keys: str) -> str:
    """SQL: the row `rows` is of no busy endpoint (the parameters `subscribers`
    and `keys`, text arrays, pair up)."""
    return (f"NOT EXISTS (SELECT 1 FROM unnest({subscribers}::text[], {keys}::text[]) AS busy"
            f" (subscriber_id, endpoint_key) WHERE busy.subscriber_id = {rows}.subscriber_id"
            f" AND busy.endpoint_key = {rows}.endpoint_key)")


# With endpoints busy (the text arrays $2, $3 of a claim, $1, $2 of next-due):
# the rows a claim picks (due by $1, up to $4), each other endpoint's earliest.
_PICKED = ("id = ANY(ARRAY(SELECT p.id FROM ({}) AS p))".format(group_heads(
    "webhook_deliveries", "pending", _ENDPOINT, "id",
    _not_busy("grp", "$2", "$3"), "$1", "$4") + " ORDER BY head.next_attempt_at LIMIT $4"))
_FIRSTS = group_heads("webhook_deliveries", "pending", _ENDPOINT, "id",
                      _not_busy("grp", "$1", "$2"), None, "1")


def _claim(skipping: bool) -> str:
    """A claim's statement: $1 due by, $2 and $3 the busy endpoints, $4 the
    limit, $5 now, $6 the lease's end, $7 the holder."""
    # The rows as they were before the claim (its lease is not theirs to show).
    # With endpoints busy, each other endpoint's earliest rows are picked
    # (groups.py: a busy one's backlog is never walked); the rows picked are
    # locked and checked again.
    steps, due = ((f"RECURSIVE {_STEPS}, ", f"{still_due('pending', '$1')} AND {_PICKED}")
                  if skipping else ("", "status = 'pending' AND next_attempt_at <= $1 AND "
                                    + _not_busy("webhook_deliveries", "$2", "$3")))
    return (f"WITH {steps}due AS (SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries"
            f" WHERE {due}"
            " ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED),"
            " checked AS (SELECT due.*, e.disabled_reason, e.subscriber_id IS NOT NULL AS dead"
            " FROM due LEFT JOIN webhook_endpoints e ON e.subscriber_id = due.subscriber_id"
            " AND e.endpoint_key = due.endpoint_key AND e.disabled_at IS NOT NULL),"
            " failed AS (UPDATE webhook_deliveries d SET status = 'failed', last_error ="
            f" {_DISABLED_ERROR_C}, claimed_until = NULL, claimed_by = NULL,"
            " updated_at = $5 FROM checked c WHERE d.id = c.id AND c.dead),"
            " claimed AS (UPDATE webhook_deliveries d SET claimed_until = $6, claimed_by = $7,"
            " next_attempt_at = $6 FROM checked c WHERE d.id = c.id AND NOT c.dead)"
            f" SELECT {DELIVERY_COLUMNS} FROM checked WHERE NOT dead ORDER BY next_attempt_at")


# A claim's statement, and a claim's skipping busy endpoints (what the webhook
# worker's claims are while some endpoint is saturated); next-due skipping them
# ($1 and $2 the busy endpoints).
_CLAIM = _claim(False)
CLAIM_SKIPPING = _claim(True)
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
# A batch's writes, whatever its number of attempts: the endpoints whose row
# changed, the pending deliveries of those it disabled (none of the batch's,
# whose writes it makes itself), the attempts in order, the deliveries attempted.
_WRITE_ATTEMPTS = (
    "WITH health AS (UPDATE webhook_endpoints e SET failing_since = h.failing_since,"
    " disabled_at = h.disabled_at, last_success_at = h.last_success_at,"
    " last_failure_at = h.last_failure_at, disabled_reason = h.disabled_reason, url = h.url"
    " FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::float8[],"
    " $6::float8[], $7::text[], $8::text[]) AS h (sub, key, failing_since, disabled_at,"
    " last_success_at, last_failure_at, disabled_reason, url)"
    " WHERE e.subscriber_id = h.sub AND e.endpoint_key = h.key),"
    " others AS (UPDATE webhook_deliveries d SET status = 'failed', last_error = o.error,"
    " claimed_until = NULL, claimed_by = NULL, updated_at = o.at"
    " FROM unnest($9::text[], $10::text[], $11::text[], $12::float8[])"
    " AS o (sub, key, error, at) WHERE d.subscriber_id = o.sub AND d.endpoint_key = o.key"
    " AND d.status = 'pending' AND d.id <> ALL($20::text[])"
    " AND (d.claimed_until IS NULL OR d.claimed_until < o.at)),"
    " logged AS (INSERT INTO webhook_attempts (delivery_id, at, outcome, status_code,"
    " latency_ms, response_body, error) SELECT a.id, a.at, a.outcome, a.code, a.latency,"
    " a.body, a.error FROM unnest($13::text[], $14::float8[], $15::text[], $16::integer[],"
    " $17::float8[], $18::text[], $19::text[]) WITH ORDINALITY"
    " AS a (id, at, outcome, code, latency, body, error, ord) ORDER BY a.ord)"
    " UPDATE webhook_deliveries d SET status = x.status, attempts = d.attempts + x.n,"
    " claimed_until = NULL, claimed_by = NULL, last_status_code = x.code,"
    " last_error = x.error, updated_at = x.at,"
    " next_attempt_at = COALESCE(x.next_at, d.next_attempt_at),"
    " delivered_at = COALESCE(x.delivered_at, d.delivered_at)"
    " FROM unnest($20::text[], $21::text[], $22::integer[], $23::integer[], $24::text[],"
    " $25::float8[], $26::float8[], $27::float8[])"
    " AS x (id, status, n, code, error, at, next_at, delivered_at) WHERE d.id = x.id")


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
            CLAIM_SKIPPING if exclude else _CLAIM,
            now if due_by is None else due_by, [s for s, _ in exclude],
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
        await conn.execute(_WRITE_ATTEMPTS, *_columns(changed, 8), *_columns(others, 4),
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
