"""PostgreSQL: the pages' sessions, in the database every process shares."""

from __future__ import annotations

from bot.store.models import WebSession
from bot.store.postgres.pool import PostgresPool
from bot.store.sessions import SESSION_COLUMNS, session_row, session_values


class PostgresSessions(PostgresPool):
    """The `WebSessions` port on PostgreSQL."""

    async def open_session(self, session: WebSession, now: float) -> None:
        await self._pool.execute(
            f"WITH ended AS (DELETE FROM web_sessions WHERE expires_at <= $8)"
            f" INSERT INTO web_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            *session_values(session), now)

    async def find_session(self, key_hash: str, now: float) -> WebSession | None:
        row = await self._pool.fetchrow(f"SELECT {SESSION_COLUMNS} FROM web_sessions"
                                        " WHERE key_hash = $1 AND expires_at > $2",
                                        key_hash, now)
        return session_row(row) if row else None

    async def end_session(self, key_hash: str) -> None:
        await self._pool.execute("DELETE FROM web_sessions WHERE key_hash = $1", key_hash)

    async def end_sessions(self, role: str, subject: str) -> int:
        status = await self._pool.execute("DELETE FROM web_sessions WHERE role = $1"
                                          " AND subject = $2", role, subject)
        return int(status.split()[-1])  # "DELETE n"
