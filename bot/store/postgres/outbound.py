"""PostgreSQL: the outbound queue (the outbound worker's port)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

from bot.effects import DeliveryDraft, OutboundDraft
from bot.store.models import (
    OutboundRow,
)
from bot.store.postgres.batches import Batches
from bot.store.postgres.effects import PostgresEffects, Statement
from bot.store.postgres.groups import (
    due_with_leases,
    group_heads,
    group_steps,
    lease_free,
    still_due,
)
from bot.store.postgres.pool import LOCK_STATUS, Conn
from bot.store.rows import (
    OUTBOUND_COLUMNS,
    OUTBOUND_FROM,
    outbound_row,
)
from bot.store.rules import QUEUED_STATUSES, sql_list

# What claims hand out, selected from the claimed rows (`o`, a CTE) joined to
# their group as OUTBOUND_FROM joins it; and the columns that join needs.
_JOIN_GROUP = OUTBOUND_FROM.removeprefix("outbound o ")
_OUTBOUND_OWN = ", ".join(f"outbound.{column.strip().removeprefix('o.')}"
                          for column in OUTBOUND_COLUMNS.split(",")
                          if column.strip().startswith("o."))
# Groups of queued messages: numbers (the index outbound_group_due). With
# numbers busy (the integer array $2 of a claim, $1 of next-due): the rows a
# claim picks (due by $1, their leases over, up to $3), each other number's
# earliest due time.
_STEPS = group_steps("outbound", "queued", ("instance_id",))
_PICKED = ("seq = ANY(ARRAY(SELECT p.seq FROM ({}) AS p))".format(group_heads(
    "outbound", "queued", ("instance_id",), "seq",
    "grp.instance_id <> ALL($2::integer[])", "$1", "$3", lease_free("$1"))
    + " ORDER BY head.next_attempt_at LIMIT $3"))
_GROUP_DUE = due_with_leases("outbound WHERE (status = 'queued') IS TRUE"
                             " AND instance_id = grp.instance_id", "instance_id, next_attempt_at")


def _claim(skipping: bool) -> str:
    """A claim's statement: $1 now, $2 the busy numbers, $3 the limit, $4 the
    lease's end, $5 the holder."""
    # With numbers busy, each other number's earliest rows are picked
    # (groups.py: a paced number's backlog is never walked); the rows picked
    # are locked and checked again. The claim writes the lease only
    # (claimed_until, claimed_by: in no index), so the row's new version is a
    # HOT update, on its page with no index entry (pg_migrations/0014): a
    # claim walks past the leased rows, as many as are in flight.
    steps, due = ((f"RECURSIVE {_STEPS}, ", f"{still_due('queued', '$1')} AND {_PICKED}")
                  if skipping else ("", "status = 'queued' AND next_attempt_at <= $1"
                                    " AND instance_id <> ALL($2::integer[])"))
    return (f"WITH {steps}due AS (SELECT seq FROM outbound WHERE {due} AND {lease_free('$1')}"
            " ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),"
            " o AS (UPDATE outbound SET claimed_until = $4, claimed_by = $5"
            f" FROM due WHERE outbound.seq = due.seq RETURNING outbound.seq, {_OUTBOUND_OWN})"
            f" SELECT {OUTBOUND_COLUMNS} FROM o {_JOIN_GROUP} ORDER BY o.seq")


# A claim's statement, and a claim's skipping busy numbers (the outbound
# worker's while some number is held back by its pace); next-due, and
# next-due skipping them.
CLAIM = _claim(False)
CLAIM_SKIPPING = _claim(True)
NEXT_DUE = "SELECT " + due_with_leases("outbound WHERE status = 'queued'", "next_attempt_at")
NEXT_DUE_SKIPPING = (f"WITH RECURSIVE {_STEPS}, free AS MATERIALIZED (SELECT * FROM grp"
                     f" WHERE grp.instance_id <> ALL($1::integer[]))"
                     f" SELECT MIN({_GROUP_DUE}) FROM free AS grp")


class _Mark(NamedTuple):
    """A sent mark, and the sent events it queues if it moved its message."""

    message_id: str
    provider_id: str
    at: float
    keep_media: bool
    deliveries: tuple[DeliveryDraft, ...]


class PostgresOutbound(PostgresEffects):
    """The `OutboundQueue` port on PostgreSQL (its reads shared: bot/store/queries.py)."""

    async def enqueue(self, drafts: list[OutboundDraft], now: float) -> None:
        await self._tx(lambda conn: self._insert_outbound(conn, drafts, now))

    async def claim_outbound(self, now: float, limit: int, lease: float,
                             exclude_instances: Sequence[int] = (),
                             holder: str | None = None) -> list[OutboundRow]:
        """Up to `limit` due messages, leased to `holder` (this store's worker id
        by default) until `now + lease`: a claim nobody finishes comes due again
        then. Rows another process is claiming are skipped, never waited for or
        handed out twice."""
        rows = await self._statement(lambda conn: conn.fetch(
            CLAIM_SKIPPING if exclude_instances else CLAIM,
            now, list(exclude_instances), limit, now + lease, holder or self.worker_id))
        return [outbound_row(r) for r in rows]

    async def mark_sent(self, message_id: str, provider_message_id: str, now: float, *,
                        keep_media: bool = False,
                        deliveries: Sequence[DeliveryDraft] = ()) -> None:
        # Group commit with the marks made meanwhile, deliveries and all.
        await self._marks.add(_Mark(message_id, provider_message_id, now, keep_media,
                                    tuple(deliveries)))

    @functools.cached_property
    def _marks(self) -> Batches[_Mark, None]:
        """Sent marks that arrive while one is being written go together in the
        next: one statement, one transaction (see batches.py)."""
        return Batches(self._write_marks, self._start)

    async def _write_marks(self, marks: list[_Mark]) -> list[None]:
        # One round trip, autocommitted: see pg_migrations/0005_mark_sent.sql,
        # 0011 and 0014. Each message's status lock is held to the batch's
        # commit; another batch never holds the same message (claims are
        # exclusive), apply_status takes one lock.
        st = Statement()
        arrays = ", ".join(st.arg(list(column), kind) for column, kind in zip(
            zip(*((m.message_id, m.provider_id, m.at, m.keep_media) for m in marks),
                strict=True), ("text[]", "text[]", "float8[]", "boolean[]"), strict=True))
        st.step("marked", (
            f"SELECT m.ord, wagate_mark_sent_from({LOCK_STATUS}, m.id, m.provider_id, m.at,"
            f" m.keep) AS before FROM unnest({arrays}) WITH ORDINALITY"
            " AS m (id, provider_id, at, keep, ord)"))
        told = [(d.id, n) for n, m in enumerate(marks, start=1) for d in m.deliveries]
        if not told:
            await self._pool.execute(st.sql("SELECT COUNT(*) FROM marked"), *st.args)
            return [None] * len(marks)
        # A mark queues its sent events only if it moved its message out of a
        # queued status, as read under the message's locks: a mark that comes
        # after a status advanced (a second mark, a lease that ran out) adds none.
        st.step("told", (
            "SELECT t.delivery FROM unnest("
            f"{st.arg([i for i, _ in told], 'text[]')}, {st.arg([n for _, n in told], 'int8[]')})"
            " AS t (delivery, mark) JOIN marked ON marked.ord = t.mark"
            f" WHERE marked.before IN {sql_list(QUEUED_STATUSES)}"))
        # The batch's marks are made within moments: its deliveries are queued
        # as of the last.
        pending = self._add_deliveries(st, [d for m in marks for d in m.deliveries],
                                       max(m.at for m in marks),
                                       gate="d.id IN (SELECT delivery FROM told)")
        # The other processes are told inside the statement, this process's
        # workers once it committed.
        notifies, unsent = self._notifies(st, ["deliveries"], f"{pending} > 0")
        queued = await self._pool.fetchval(st.sql(
            f"SELECT {pending} FROM (SELECT COUNT(*) FROM marked) AS m, {notifies} AS w"),
            *st.args)
        if queued:
            self._committed(["deliveries"], unsent)
        return [None] * len(marks)

    async def mark_retry(self, message_id: str, next_attempt_at: float, code: int | None,
                         title: str | None, now: float) -> None:
        await self._statement(lambda conn: conn.execute(
            "WITH retried AS (UPDATE outbound SET attempts = attempts + 1, next_attempt_at = $1,"
            " claimed_until = NULL, claimed_by = NULL, error_code = $2, error_title = $3,"
            " updated_at = $4 WHERE id = $5) INSERT INTO outbound_history (message_id, at,"
            " status, error_code, error_title) VALUES ($5, $4, 'retry', $2, $3)",
            next_attempt_at, code, title, now, message_id))

    async def mark_failed(self, message_id: str, code: int | None, title: str | None,
                          now: float, *, deliveries: Sequence[DeliveryDraft] = ()) -> None:
        mark = ("WITH failed AS (UPDATE outbound SET status = 'failed', attempts = attempts + 1,"
                " claimed_until = NULL, claimed_by = NULL, error_code = $1, error_title = $2,"
                " media = NULL, updated_at = $3 WHERE id = $4) INSERT INTO outbound_history"
                " (message_id, at, status, error_code, error_title)"
                " VALUES ($4, $3, 'failed', $1, $2)", code, title, now, message_id)
        if not deliveries:  # one round trip
            await self._statement(lambda conn: conn.execute(*mark))
            return

        async def unit(conn: Conn) -> None:
            await conn.execute(*mark)
            await self._insert_deliveries(conn, deliveries, now)
        await self._tx(unit)

    async def release_claims(self, holder: str | None = None) -> int:
        """`holder`'s claims (this store's worker id's by default): due again at
        once. Another process's claims are never touched: they come due when
        their lease ends. How many were released."""
        return await self._release("outbound", "queued", holder)

    async def next_outbound_due(self, exclude_instances: Sequence[int] = ()) -> float | None:
        if not exclude_instances:  # the partial index's first entries
            return await self._pool.fetchval(NEXT_DUE)
        return await self._pool.fetchval(  # the other numbers' earliest
            NEXT_DUE_SKIPPING, list(exclude_instances))

    async def resend_as_template(self, build: Callable[[OutboundRow, str | None, bool],
                                                       str | None], now: float, *,
                                 message_id: str | None = None,
                                 provider_message_id: str | None = None,
                                 requeue: bool = True) -> OutboundRow | None:
        """See SqliteStore.resend_as_template."""
        async def unit(conn: Conn) -> OutboundRow | None:
            key, value = (("o.id", message_id) if message_id is not None
                          else ("o.provider_message_id", provider_message_id))
            found = await conn.fetchrow(
                f"SELECT {OUTBOUND_COLUMNS}, o.media IS NOT NULL, r.locale FROM {OUTBOUND_FROM}"
                " LEFT JOIN registrations r ON r.instance_id = o.instance_id"
                f" AND r.number = o.to_number WHERE {key} = $1 FOR UPDATE OF o", value)
            if found is None or found[10] in ("failed", "delivered", "read"):
                return None
            template = build(outbound_row(found), found[-1], bool(found[-2]))
            if template is None:
                return None
            if requeue:
                await conn.execute(
                    "UPDATE outbound SET template = $1, status = 'queued',"
                    " provider_message_id = NULL, claimed_until = NULL, next_attempt_at = $2,"
                    " updated_at = $2 WHERE id = $3", template, now, found[0])
                self._notify(conn, "outbound")
            else:
                await conn.execute("UPDATE outbound SET template = $1, updated_at = $2"
                                   " WHERE id = $3", template, now, found[0])
            return await self._outbound_of(conn, found[0])
        return await self._tx(unit)
