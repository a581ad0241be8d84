"""SQLite: the outbound queue (the outbound worker's port)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

from bot.effects import DeliveryDraft, OutboundDraft
from bot.store.models import (
    OutboundRow,
)
from bot.store.rows import OUTBOUND_COLUMNS as _OUTBOUND_COLUMNS
from bot.store.rows import OUTBOUND_FROM as _OUTBOUND_FROM
from bot.store.rows import outbound_row as _outbound
from bot.store.rules import (
    QUEUED_STATUSES,
    sql_list,
    status_advances,
)
from bot.store.sqlite.effects import SqliteEffects
from bot.store.sqlite.groups import earliest

# Queued messages by number, then due time.
_BY_NUMBER = "outbound INDEXED BY outbound_group_due"

# A message still queued (or being sent) is sent now; one further along (a
# status came first) stays as it is.
_MARK_SENT = (f"UPDATE outbound SET status = CASE WHEN status IN {sql_list(QUEUED_STATUSES)}"
              " THEN 'sent' ELSE status END, provider_message_id = ?, attempts = attempts + 1,"
              " claimed_until = NULL, media = CASE WHEN ? THEN media END, updated_at = ?"
              " WHERE id = ?")


class SqliteOutbound(SqliteEffects):
    """The `OutboundQueue` port on SQLite (its reads shared: bot/store/queries.py)."""

    async def enqueue(self, drafts: list[OutboundDraft], now: float) -> None:
        await self._tx(lambda conn: self._insert_outbound(conn, drafts, now))

    async def claim_outbound(self, now: float, limit: int, lease: float,
                             exclude_instances: Sequence[int] = (),
                             holder: str | None = None) -> list[OutboundRow]:
        """Up to `limit` due messages, leased to `holder` until `now + lease` (a
        visibility timeout: next_attempt_at moves to the lease's end, so rows in
        flight are never walked past), skipping numbers in `exclude_instances`."""
        def unit(conn: sqlite3.Connection) -> list[OutboundRow]:
            if exclude_instances:  # each other number's earliest, never a paced one's backlog
                ids = [r[0] for r in earliest(
                    conn, _BY_NUMBER, "queued", ("instance_id",), "seq",
                    {(i,) for i in exclude_instances}, now, limit)]
            else:
                ids = [r[0] for r in conn.execute(
                    "SELECT seq FROM outbound INDEXED BY outbound_due WHERE status = 'queued'"
                    " AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?", (now, limit))]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            conn.execute(f"UPDATE outbound SET claimed_until = ?, claimed_by = ?,"
                         f" next_attempt_at = ? WHERE seq IN ({marks})",
                         (now + lease, holder, now + lease, *ids))
            rows = conn.execute(f"SELECT {_OUTBOUND_COLUMNS} FROM {_OUTBOUND_FROM}"
                                f" WHERE o.seq IN ({marks}) ORDER BY o.seq", ids).fetchall()
            return [_outbound(r) for r in rows]
        return await self._tx(unit)

    async def mark_sent(self, message_id: str, provider_message_id: str, now: float, *,
                        keep_media: bool = False,
                        deliveries: Sequence[DeliveryDraft] = ()) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            before = conn.execute("SELECT status FROM outbound WHERE id = ?",
                                  (message_id,)).fetchone()
            if before is not None and before[0] in QUEUED_STATUSES:
                self._record(conn, message_id, now, "sent")
                self._insert_deliveries(conn, deliveries, now)
            conn.execute(_MARK_SENT, (provider_message_id, keep_media, now, message_id))
            early = conn.execute("DELETE FROM early_statuses WHERE provider_message_id = ?"
                                 " RETURNING status, error_code, error_title, received_at",
                                 (provider_message_id,)).fetchone()
            if early is not None and keep_media:  # the provider has fetched them already
                conn.execute("UPDATE outbound SET media = NULL WHERE id = ?", (message_id,))
            if early is not None and status_advances("sent", early[0]):
                conn.execute("UPDATE outbound SET status = ?, error_code = COALESCE(?,"
                             " error_code), error_title = COALESCE(?, error_title) WHERE id = ?",
                             (*early[:3], message_id))
                self._record(conn, message_id, early[3], *early[:3])
        await self._tx_urgent(unit)

    async def mark_retry(self, message_id: str, next_attempt_at: float, code: int | None,
                         title: str | None, now: float) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE outbound SET attempts = attempts + 1, next_attempt_at = ?,"
                         " claimed_until = NULL, error_code = ?, error_title = ?,"
                         " updated_at = ? WHERE id = ?",
                         (next_attempt_at, code, title, now, message_id))
            self._record(conn, message_id, now, "retry", code, title)
        await self._tx(unit)

    async def mark_failed(self, message_id: str, code: int | None, title: str | None,
                          now: float, *, deliveries: Sequence[DeliveryDraft] = ()) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE outbound SET status = 'failed', attempts = attempts + 1,"
                         " claimed_until = NULL, error_code = ?, error_title = ?,"
                         " media = NULL, updated_at = ? WHERE id = ?",
                         (code, title, now, message_id))
            self._record(conn, message_id, now, "failed", code, title)
            self._insert_deliveries(conn, deliveries, now)
        await self._tx(unit)

    async def release_claims(self, holder: str | None = None) -> int:
        """Claims of a stopped or killed worker, `holder`'s (every claim when
        None): due again at once. How many were released."""
        mine, args = (" AND claimed_by = ?", [holder]) if holder is not None else ("", [])
        return await self._tx(lambda conn: conn.execute(
            "UPDATE outbound SET claimed_until = NULL, next_attempt_at = MIN(next_attempt_at, ?)"
            f" WHERE status = 'queued' AND claimed_until IS NOT NULL{mine}",
            (time.time(), *args)).rowcount)

    async def next_outbound_due(self, exclude_instances: Sequence[int] = ()) -> float | None:
        def unit(conn: sqlite3.Connection) -> float | None:
            if exclude_instances:  # the other numbers' first rows
                firsts = earliest(conn, _BY_NUMBER, "queued", ("instance_id",),
                                  "next_attempt_at", {(i,) for i in exclude_instances}, None, 1)
                return firsts[0][0] if firsts else None
            # Leased rows carry their lease's end: an index lookup.
            row = conn.execute("SELECT MIN(next_attempt_at) FROM outbound"
                               " WHERE status = 'queued'").fetchone()
            return row[0] if row else None
        return await self._run(unit)

    async def resend_as_template(self, build: Callable[[OutboundRow, str | None, bool],
                                                       str | None], now: float, *,
                                 message_id: str | None = None,
                                 provider_message_id: str | None = None,
                                 requeue: bool = True) -> OutboundRow | None:
        """A message the provider refused as outside the window: set it to go out
        again as the template `build` names (given the row, the user's locale and
        whether its media are still here), due now (`requeue`) or kept by its
        current claim. The row after, or None when `build` names none."""
        def unit(conn: sqlite3.Connection) -> OutboundRow | None:
            key, value = (("o.id", message_id) if message_id is not None
                          else ("o.provider_message_id", provider_message_id))
            found = conn.execute(f"SELECT {_OUTBOUND_COLUMNS}, o.media IS NOT NULL,"
                                 f" r.locale FROM {_OUTBOUND_FROM} LEFT JOIN registrations r"
                                 " ON r.instance_id = o.instance_id AND r.number = o.to_number"
                                 f" WHERE {key} = ?", (value,)).fetchone()
            if found is None or found[10] in ("failed", "delivered", "read"):
                return None
            template = build(_outbound(found), found[-1], bool(found[-2]))
            if template is None:
                return None
            if requeue:
                conn.execute("UPDATE outbound SET template = ?, status = 'queued',"
                             " provider_message_id = NULL, claimed_until = NULL,"
                             " next_attempt_at = ?, updated_at = ? WHERE id = ?",
                             (template, now, now, found[0]))
                self._notify(conn, "outbound")
            else:
                conn.execute("UPDATE outbound SET template = ?, updated_at = ? WHERE id = ?",
                             (template, now, found[0]))
            return self._outbound_of(conn, found[0])
        return await self._tx(unit)
