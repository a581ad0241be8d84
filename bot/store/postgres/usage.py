"""PostgreSQL: subscriber sends, checked against the plan and queued at once."""

from __future__ import annotations

import dataclasses

from bot.effects import OutboundDraft
from bot.store.models import (
    Fit,
    SendLimits,
    SendOutcome,
)
from bot.store.postgres.effects import REG_OF_USER, PostgresEffects, Statement
from bot.store.postgres.pool import Conn, Rollback, literal
from bot.store.rows import (
    registration_row,
)
from bot.store.rules import (
    QuotaPeriod,
    group_name_key,
    send_decision,
)


class PostgresUsage(PostgresEffects):
    """The `Usage` port on PostgreSQL (`send_usage` shared: bot/store/queries.py)."""

    async def accept_send(self, draft: OutboundDraft, *, group_name: str | None,
                          limits: SendLimits, now: float,
                          fit: Fit | None = None) -> SendOutcome:
        """Check and queue one subscriber send as one transaction (see
        SqliteStore.accept_send). The subscriber's quota row is locked first
        (created when missing), so its sends run one after another whichever
        process takes them: no limit is ever exceeded. A refusal rolls back."""
        subscriber = draft.subscriber_id
        if subscriber is None:
            raise ValueError("a subscriber send needs draft.subscriber_id")

        # The upsert locks the row, with the BEGIN (so as literal SQL); a new one
        # (count 0, starting now) is the same to the rule as no period running.
        lock = ("BEGIN; INSERT INTO send_quota (subscriber_id, period_start, count)"
                f" VALUES ({literal(subscriber)}, {float(now)!r}, 0)"
                " ON CONFLICT (subscriber_id) DO UPDATE SET count = send_quota.count")

        async def unit(conn: Conn) -> SendOutcome:
            queued = draft
            # What the rule needs is read after the lock, in one query: the
            # recipient (the group, or the registration), whether it is known and,
            # when not, how many recipients the subscriber has; the quota period.
            recipients = ("CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM send_recipients"
                          " WHERE subscriber_id = $3 AND recipient = {0}) AS known) AS k"
                          " CROSS JOIN (SELECT period_start, count FROM send_quota"
                          " WHERE subscriber_id = $3) AS q")
            total = ("CASE WHEN k.known THEN 0 ELSE (SELECT COUNT(*) FROM send_recipients"
                     " WHERE subscriber_id = $3) END, q.period_start, q.count")
            if group_name is not None:
                prefix = f"group:{draft.instance_id}:"
                found = await conn.fetchrow(
                    f"SELECT g.group_id, k.known, {total} FROM (SELECT group_id FROM groups"
                    " WHERE instance_id = $1 AND name_key = $2 ORDER BY registered_at DESC"
                    f" LIMIT 1) AS g {recipients.format('$4 || g.group_id')}",
                    draft.instance_id, group_name_key(group_name), subscriber, prefix)
                if found is None:
                    raise Rollback(SendOutcome(status="unknown_group"))
                queued = dataclasses.replace(draft, to=None, group_id=found[0])
                recipient = prefix + found[0]
            else:
                found = await conn.fetchrow(
                    f"SELECT r.*, k.known, {total} FROM ({REG_OF_USER}) AS r"
                    f" {recipients.format('r.number')}", draft.instance_id, draft.to, subscriber)
                reg = registration_row(found) if found else None
                if reg is None or not reg.active:
                    raise Rollback(SendOutcome(status="not_registered"))
                queued = dataclasses.replace(draft, to=reg.number)  # a user id may name it
                if fit is not None:
                    fitted = fit(queued, reg)
                    if isinstance(fitted, SendOutcome):
                        raise Rollback(fitted)
                    queued = fitted
                recipient = reg.number
            known, total_count, *period = found[-4:]
            decision = send_decision(QuotaPeriod(start=period[0], count=period[1]),
                                     known_recipient=known, recipients=total_count,
                                     limits=limits, now=now)
            if not decision.queued:
                raise Rollback(decision)
            st = Statement()  # every write, in one statement
            sub = st.arg(subscriber, "text")
            st.step("quota", f"UPDATE send_quota SET period_start ="
                             f" {st.arg(decision.period_start, 'float8')},"
                             f" count = {st.arg(decision.count, 'integer')}"
                             f" WHERE subscriber_id = {sub}")
            if not known:
                st.step("recipient", "INSERT INTO send_recipients (subscriber_id, recipient,"
                                     f" first_sent_at) VALUES ({sub}, {st.arg(recipient)},"
                                     f" {st.once('now', now, 'float8')})")
            self._add_outbound(st, [queued], now)
            await conn.execute(st.sql("SELECT 1"), *st.args)
            self._notify(conn, "outbound")
            return dataclasses.replace(decision, message_id=queued.id)
        return await self._tx(unit, begin=lock)
