"""PostgreSQL: the record of the service's mails to subscribers (`MailLog`),
shared by every process, so a mail goes once whichever process sends it."""

from __future__ import annotations

from bot.store.postgres.pool import PostgresPool


class PostgresMail(PostgresPool):
    """The `MailLog` port on PostgreSQL."""

    async def claim_mail(self, subscriber_id: str, kind: str, now: float, lease: float) -> bool:
        claimed = await self._pool.fetchval(
            "INSERT INTO sent_mail (subscriber_id, kind, claimed_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (subscriber_id, kind) DO UPDATE SET claimed_at = excluded.claimed_at"
            " WHERE sent_mail.sent_at IS NULL AND sent_mail.claimed_at <= $4 RETURNING true",
            subscriber_id, kind, now, now - lease)
        return bool(claimed)

    async def finish_mail(self, subscriber_id: str, kind: str, now: float, *,
                          sent: bool) -> None:
        if sent:
            await self._pool.execute("UPDATE sent_mail SET sent_at = $3 WHERE subscriber_id = $1"
                                     " AND kind = $2", subscriber_id, kind, now)
        else:
            await self._pool.execute("DELETE FROM sent_mail WHERE subscriber_id = $1"
                                     " AND kind = $2 AND sent_at IS NULL", subscriber_id, kind)

    async def sent_mail(self, subscriber_id: str) -> list[tuple[str, float]]:
        rows = await self._pool.fetch("SELECT kind, sent_at FROM sent_mail WHERE"
                                      " subscriber_id = $1 AND sent_at IS NOT NULL"
                                      " ORDER BY sent_at", subscriber_id)
        return [(row[0], row[1]) for row in rows]
