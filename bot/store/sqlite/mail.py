"""SQLite: the record of the service's mails to subscribers (`MailLog`)."""

from __future__ import annotations

import sqlite3

from bot.store.sqlite.engine import SqliteEngine


class SqliteMail(SqliteEngine):
    """The `MailLog` port on SQLite."""

    async def claim_mail(self, subscriber_id: str, kind: str, now: float, lease: float) -> bool:
        def unit(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "INSERT INTO sent_mail (subscriber_id, kind, claimed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (subscriber_id, kind) DO UPDATE SET claimed_at = excluded.claimed_at"
                " WHERE sent_mail.sent_at IS NULL AND sent_mail.claimed_at <= ?",
                (subscriber_id, kind, now, now - lease)).rowcount == 1
        return await self._tx(unit)

    async def finish_mail(self, subscriber_id: str, kind: str, now: float, *,
                          sent: bool) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            if sent:
                conn.execute("UPDATE sent_mail SET sent_at = ? WHERE subscriber_id = ?"
                             " AND kind = ?", (now, subscriber_id, kind))
            else:
                conn.execute("DELETE FROM sent_mail WHERE subscriber_id = ? AND kind = ?"
                             " AND sent_at IS NULL", (subscriber_id, kind))
        await self._tx(unit)

    async def sent_mail(self, subscriber_id: str) -> list[tuple[str, float]]:
        def unit(conn: sqlite3.Connection) -> list[tuple[str, float]]:
            return [(kind, at) for kind, at in conn.execute(
                "SELECT kind, sent_at FROM sent_mail WHERE subscriber_id = ?"
                " AND sent_at IS NOT NULL ORDER BY sent_at", (subscriber_id,))]
        return await self._lookup(unit)
