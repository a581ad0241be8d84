"""SQLite: the pages' sessions (a session is looked up on the request path,
as a point lookup)."""

from __future__ import annotations

import sqlite3

from bot.store.models import WebSession
from bot.store.sessions import SESSION_COLUMNS, session_row, session_values
from bot.store.sqlite.engine import SqliteEngine


class SqliteSessions(SqliteEngine):
    """The `WebSessions` port on SQLite."""

    async def open_session(self, session: WebSession, now: float) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (now,))
            conn.execute(f"INSERT INTO web_sessions ({SESSION_COLUMNS})"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", session_values(session))
        await self._tx(unit)

    async def find_session(self, key_hash: str, now: float) -> WebSession | None:
        def unit(conn: sqlite3.Connection) -> WebSession | None:
            row = conn.execute(f"SELECT {SESSION_COLUMNS} FROM web_sessions WHERE key_hash = ?"
                               " AND expires_at > ?", (key_hash, now)).fetchone()
            return session_row(row) if row else None
        return await self._lookup(unit)

    async def end_session(self, key_hash: str) -> None:
        def unit(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM web_sessions WHERE key_hash = ?", (key_hash,))
        await self._tx(unit)

    async def end_sessions(self, role: str, subject: str) -> int:
        def unit(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM web_sessions WHERE role = ? AND subject = ?",
                                (role, subject)).rowcount
        return await self._tx(unit)
