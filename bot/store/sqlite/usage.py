"""SQLite: subscriber sends, checked against the plan and queued at once."""

from __future__ import annotations

import dataclasses
import sqlite3

from bot.effects import OutboundDraft
from bot.store.models import (
    Fit,
    SendLimits,
    SendOutcome,
)
from bot.store.rows import registration_row as _registration
from bot.store.rules import (
    QuotaPeriod,
    group_name_key,
    send_decision,
)
from bot.store.sqlite.effects import SqliteEffects, reg_of_user


class SqliteUsage(SqliteEffects):
    """The `Usage` port on SQLite (`send_usage` shared: bot/store/queries.py)."""

    async def accept_send(self, draft: OutboundDraft, *, group_name: str | None,
                          limits: SendLimits, now: float,
                          fit: Fit | None = None) -> SendOutcome:
        """Check and queue one subscriber send as one transaction.

        The recipient must hold an active registration on the draft's instance
        (or `group_name` name a group registered there); a new recipient must
        fit the plan's total; the quota period (started by the first send when
        none runs) must have room. Only then are the count, the recipient and
        the message written, so a refused send leaves no trace. `fit`, given the
        recipient's registration, says what goes out (bot/window.py: as sent,
        as a template, or refused outside the window). Units run one
        after another on the store's connection, so concurrent sends see each
        other's counts and no limit is ever exceeded.
        """
        subscriber = draft.subscriber_id
        if subscriber is None:
            raise ValueError("a subscriber send needs draft.subscriber_id")

        def unit(conn: sqlite3.Connection) -> SendOutcome:
            queued = draft
            if group_name is not None:
                row = conn.execute("SELECT group_id FROM groups WHERE instance_id = ?"
                                   " AND name_key = ? ORDER BY registered_at DESC LIMIT 1",
                                   (draft.instance_id, group_name_key(group_name))).fetchone()
                if row is None:
                    return SendOutcome(status="unknown_group")
                queued = dataclasses.replace(draft, to=None, group_id=row[0])
                recipient = f"group:{draft.instance_id}:{row[0]}"
            else:
                row = reg_of_user(conn, draft.instance_id, draft.to, draft.to)
                reg = _registration(row) if row else None
                if reg is None or not reg.active:
                    return SendOutcome(status="not_registered")
                queued = dataclasses.replace(draft, to=reg.number)  # a user id may name it
                if fit is not None:
                    fitted = fit(queued, reg)
                    if isinstance(fitted, SendOutcome):
                        return fitted
                    queued = fitted
                recipient = reg.number
            known = conn.execute("SELECT 1 FROM send_recipients WHERE subscriber_id = ?"
                                 " AND recipient = ?", (subscriber, recipient)).fetchone()
            (total,) = (0,) if known else conn.execute(
                "SELECT COUNT(*) FROM send_recipients WHERE subscriber_id = ?",
                (subscriber,)).fetchone()
            row = conn.execute("SELECT period_start, count FROM send_quota"
                               " WHERE subscriber_id = ?", (subscriber,)).fetchone()
            decision = send_decision(QuotaPeriod(start=row[0], count=row[1]) if row else None,
                                     known_recipient=known is not None, recipients=total,
                                     limits=limits, now=now)
            if not decision.queued:
                return decision
            conn.execute("INSERT INTO send_quota (subscriber_id, period_start, count)"
                         " VALUES (?, ?, ?) ON CONFLICT (subscriber_id) DO UPDATE SET"
                         " period_start = excluded.period_start, count = excluded.count",
                         (subscriber, decision.period_start, decision.count))
            if known is None:
                conn.execute("INSERT INTO send_recipients (subscriber_id, recipient,"
                             " first_sent_at) VALUES (?, ?, ?)", (subscriber, recipient, now))
            self._insert_outbound(conn, [queued], now)
            return dataclasses.replace(decision, message_id=queued.id)
        return await self._tx(unit)
