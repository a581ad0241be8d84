"""PostgreSQL: subscriber sends, checked against the plan and queued at once."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from bot.effects import OutboundDraft
from bot.store.models import (
    Fit,
    SendLimits,
    SendOutcome,
)
from bot.store.postgres.batches import Batches
from bot.store.postgres.effects import PostgresEffects, Statement, registration_of
from bot.store.postgres.pool import Conn, Rollback, literal
from bot.store.rows import (
    REG_COLUMNS,
    registration_row,
)
from bot.store.rules import (
    QuotaPeriod,
    group_name_key,
    send_decision,
)

# What each send of a batch needs, read after the quota locks in one query:
# its group (by name) or its registration (by number or user id, the number's
# own row first, as REG_OF_USER), whether the subscriber sent to that
# recipient before; per subscriber, its recipients so far (counted only when
# some send may add one) and its quota period. Rows in the batch's order.
_CONTEXT = (
    "WITH u AS MATERIALIZED (SELECT u.ord, u.sub, g.group_id, r.*, EXISTS (SELECT 1"
    " FROM send_recipients s WHERE s.subscriber_id = u.sub AND s.recipient ="
    " COALESCE('group:' || u.inst || ':' || g.group_id, r.number)) AS known"
    " FROM unnest($1::integer[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY"
    " AS u (inst, ident, name_key, sub, ord)"
    " LEFT JOIN LATERAL (SELECT group_id FROM groups WHERE u.name_key IS NOT NULL"
    " AND instance_id = u.inst AND name_key = u.name_key ORDER BY registered_at DESC"
    " LIMIT 1) AS g ON TRUE"
    f" LEFT JOIN LATERAL ({registration_of(REG_COLUMNS, 'u.inst', 'u.ident', 'u.ident')})"
    " AS r ON TRUE),"
    " t AS (SELECT sub, CASE WHEN bool_and(known) THEN 0 ELSE (SELECT COUNT(*)"
    " FROM send_recipients WHERE subscriber_id = u.sub) END AS total FROM u GROUP BY sub)"
    f" SELECT {', '.join('u.' + c.strip() for c in REG_COLUMNS.split(','))},"
    " u.group_id, u.known, t.total, q.period_start, q.count"
    " FROM u JOIN t USING (sub) JOIN send_quota q ON q.subscriber_id = u.sub ORDER BY u.ord")

# The period_start of a quota row a batch's lock made: no period runs (the rule
# starts one at the first send). Only a batch holding its lock ever sees it:
# the batch writes the row's real period, or deletes it, before it commits.
_MADE = float("-inf")


@dataclasses.dataclass(frozen=True, slots=True)
class _Send:
    draft: OutboundDraft
    group_name: str | None
    limits: SendLimits
    now: float
    fit: Fit | None


@dataclasses.dataclass(slots=True)
class _Spent:
    """One subscriber's quota period and recipients, carried from send to send
    through a batch, as if its sends had been written one after another."""

    period: QuotaPeriod
    recipients: int  # sent to so far (when some send of the batch may add one)
    known: set[str] = dataclasses.field(default_factory=set)  # added by this batch
    added: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    queued: bool = False


class PostgresUsage(PostgresEffects):
    """The `Usage` port on PostgreSQL (`send_usage` shared: bot/store/queries.py)."""

    async def accept_send(self, draft: OutboundDraft, *, group_name: str | None,
                          limits: SendLimits, now: float,
                          fit: Fit | None = None) -> SendOutcome:
        """Check and queue one subscriber send (see SqliteStore.accept_send).
        Sends that arrive while a batch of them is being written go together in
        the next, one transaction (batches.py): it locks the quota rows of its
        subscribers first (created when missing), so a subscriber's sends run
        one batch after another whichever process takes them, and within a
        batch they are decided in arrival order: no limit is ever exceeded. A
        refused send writes nothing; the answer comes once the batch committed."""
        if draft.subscriber_id is None:
            raise ValueError("a subscriber send needs draft.subscriber_id")
        return await self._sends.add(_Send(draft, group_name, limits, now, fit))

    @functools.cached_property
    def _sends(self) -> Batches[_Send, SendOutcome]:
        return Batches(self._write_sends, self._start)

    async def _write_sends(self, sends: list[_Send]) -> list[SendOutcome]:
        # The upsert locks the rows, with the BEGIN (so as literal SQL), in the
        # subscribers' order: two processes' batches never wait on each other
        # in a circle.
        subscribers = sorted({str(send.draft.subscriber_id) for send in sends})
        lock = ("BEGIN; INSERT INTO send_quota (subscriber_id, period_start, count) VALUES "
                + ", ".join(f"({literal(sub)}, '-Infinity', 0)" for sub in subscribers)
                + " ON CONFLICT (subscriber_id) DO UPDATE SET count = send_quota.count")

        async def unit(conn: Conn) -> list[SendOutcome]:
            rows = await conn.fetch(
                _CONTEXT, [s.draft.instance_id for s in sends],
                [s.draft.to if s.group_name is None else None for s in sends],
                [None if s.group_name is None else group_name_key(s.group_name)
                 for s in sends],
                [s.draft.subscriber_id for s in sends])
            spent: dict[str, _Spent] = {}
            queued: list[tuple[OutboundDraft, float]] = []
            outcomes = []
            for send, row in zip(sends, rows, strict=True):
                sub = str(send.draft.subscriber_id)
                if sub not in spent:
                    spent[sub] = _Spent(QuotaPeriod(start=row[-2], count=row[-1]), row[-3])
                outcome = _decide(send, row, spent[sub], queued)
                outcomes.append(outcome)
            if not queued:
                raise Rollback(outcomes)  # nothing to write, not even a lock's new row
            await conn.execute(*_writes(spent, queued))
            self._notify(conn, "outbound")
            return outcomes
        return await self._tx(unit, begin=lock)


def _decide(send: _Send, row: Any, spent: _Spent,
            queued: list[tuple[OutboundDraft, float]]) -> SendOutcome:
    """One send of a batch, decided as SqliteStore.accept_send does, against its
    subscriber's period and recipients as the batch's earlier sends left them;
    an accepted one joins `queued`."""
    draft = send.draft
    group_id, known = row[10], row[11]
    if send.group_name is not None:
        if group_id is None:
            return SendOutcome(status="unknown_group")
        draft = dataclasses.replace(draft, to=None, group_id=group_id)
        recipient = f"group:{draft.instance_id}:{group_id}"
    else:
        reg = registration_row(row) if row[1] is not None else None
        if reg is None or not reg.active:
            return SendOutcome(status="not_registered")
        draft = dataclasses.replace(draft, to=reg.number)  # a user id may name it
        if send.fit is not None:
            fitted = send.fit(draft, reg)
            if isinstance(fitted, SendOutcome):
                return fitted
            draft = fitted
        recipient = reg.number
    known = known or recipient in spent.known
    decision = send_decision(spent.period, known_recipient=known,
                             recipients=spent.recipients, limits=send.limits, now=send.now)
    if not decision.queued:
        return decision
    assert decision.period_start is not None
    spent.period = QuotaPeriod(start=decision.period_start, count=decision.count)
    spent.queued = True
    if not known:
        spent.known.add(recipient)
        spent.added.append((recipient, send.now))
        spent.recipients += 1
    queued.append((draft, send.now))
    return dataclasses.replace(decision, message_id=draft.id)


def _writes(spent: dict[str, _Spent],
            queued: list[tuple[OutboundDraft, float]]) -> tuple[Any, ...]:
    """A batch's every write, one statement: the quota rows' final periods (a
    row the lock made for nothing deleted), new recipients, the messages."""
    st = Statement()
    used = {sub: s for sub, s in spent.items() if s.queued}
    st.step("quota", (
        "UPDATE send_quota AS q SET period_start = v.start, count = v.count FROM unnest("
        f"{st.arg(list(used), 'text[]')}, "
        f"{st.arg([s.period.start for s in used.values()], 'float8[]')}, "
        f"{st.arg([s.period.count for s in used.values()], 'integer[]')})"
        " AS v (sub, start, count) WHERE q.subscriber_id = v.sub"))
    unused = [sub for sub, s in spent.items() if not s.queued and s.period.start == _MADE]
    if unused:
        st.step("unused", "DELETE FROM send_quota WHERE subscriber_id ="
                          f" ANY({st.arg(unused, 'text[]')})")
    added = [(sub, recipient, at) for sub, s in used.items() for recipient, at in s.added]
    if added:
        subs, recipients, times = (list(column) for column in zip(*added, strict=True))
        st.step("recipient", (
            "INSERT INTO send_recipients (subscriber_id, recipient, first_sent_at)"
            f" SELECT * FROM unnest({st.arg(subs, 'text[]')}, {st.arg(recipients, 'text[]')},"
            f" {st.arg(times, 'float8[]')})"))
    PostgresEffects._add_outbound(st, [draft for draft, _ in queued],
                                  [at for _, at in queued])
    return (st.sql("SELECT 1"), *st.args)
