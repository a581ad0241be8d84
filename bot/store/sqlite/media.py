"""Inbound media on SQLite: the queue of files to fetch, the files, and the
store's own secrets. `insert_media` runs inside `commit_inbound`'s transaction."""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from bot.effects import MediaDraft
from bot.store.models import MediaInfo, MediaJob, MediaResult
from bot.store.sqlite.effects import SqliteEffects

_JOB_COLUMNS = ("id, provider, instance_id, kind, provider_media_id, source_url, mime_type,"
                " filename, attempts")
_INFO_COLUMNS = "id, status, kind, mime_type, filename, size, sha256, error, expires_at"


def insert_media(conn: sqlite3.Connection, media: MediaDraft, now: float) -> None:
    conn.execute(
        "INSERT INTO inbound_media (id, provider, instance_id, kind, provider_media_id,"
        " source_url, mime_type, filename, status, next_attempt_at, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (media.id, media.provider, media.instance_id, media.kind, media.provider_media_id,
         media.source_url, media.mime_type, media.filename, now, now, media.expires_at))


def media_info(row: Any) -> MediaInfo:
    return MediaInfo(id=row[0], status=row[1], kind=row[2], mime_type=row[3], filename=row[4],
                     size=row[5], sha256=row[6], error=row[7], expires_at=row[8])


class SqliteMedia(SqliteEffects):

    async def claim_media(self, now: float, limit: int, lease: float,
                          holder: str | None = None) -> list[MediaJob]:
        """Up to `limit` files due, leased to `holder` until `now + lease`."""
        def unit(conn: sqlite3.Connection) -> list[MediaJob]:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM inbound_media WHERE status = 'pending'"
                " AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                (now, limit)).fetchall()
            conn.executemany("UPDATE inbound_media SET claimed_until = ?, claimed_by = ?,"
                             " next_attempt_at = ? WHERE id = ?",
                             [(now + lease, holder, now + lease, r[0]) for r in rows])
            return [MediaJob(id=r[0], provider=r[1], instance_id=r[2], kind=r[3],
                             provider_media_id=r[4], source_url=r[5], mime_type=r[6],
                             filename=r[7], attempts=r[8]) for r in rows]
        return await self._tx(unit)

    async def finish_media(self, media_id: str, result: MediaResult, now: float) -> int:
        """Record a fetch; once it is final (the file, or an error with no retry),
        release the deliveries waiting for it. Returns how many were released."""
        def unit(conn: sqlite3.Connection) -> int:
            if result.content is not None:
                conn.execute(
                    "UPDATE inbound_media SET status = 'ready', content = ?, size = ?,"
                    " sha256 = ?, mime_type = COALESCE(?, mime_type), error = NULL,"
                    " attempts = attempts + 1, fetched_at = ?, claimed_until = NULL,"
                    " claimed_by = NULL WHERE id = ?",
                    (result.content, len(result.content), result.sha256, result.mime_type,
                     now, media_id))
            elif result.retry_at is not None:
                conn.execute(
                    "UPDATE inbound_media SET error = ?, attempts = attempts + 1,"
                    " next_attempt_at = ?, claimed_until = NULL, claimed_by = NULL"
                    " WHERE id = ?", (result.error, result.retry_at, media_id))
                return 0
            else:
                conn.execute(
                    "UPDATE inbound_media SET status = 'failed', error = ?,"
                    " attempts = attempts + 1, claimed_until = NULL, claimed_by = NULL"
                    " WHERE id = ?", (result.error, media_id))
            # Only deliveries still waiting: one already tried keeps its schedule.
            released: int = conn.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE media_id = ?"
                " AND status = 'pending' AND attempts = 0 AND claimed_until IS NULL"
                " AND next_attempt_at > ?", (now, media_id, now)).rowcount
            if released:
                self._notify(conn, "deliveries")
            return released
        return await self._tx(unit)

    async def media_info(self, media_id: str) -> MediaInfo | None:
        def unit(conn: sqlite3.Connection) -> MediaInfo | None:
            row = conn.execute(f"SELECT {_INFO_COLUMNS} FROM inbound_media WHERE id = ?",
                               (media_id,)).fetchone()
            return media_info(row) if row else None
        return await self._run(unit)

    async def media_content(self, media_id: str) -> tuple[MediaInfo, bytes] | None:
        def unit(conn: sqlite3.Connection) -> tuple[MediaInfo, bytes] | None:
            row = conn.execute(f"SELECT {_INFO_COLUMNS}, content FROM inbound_media"
                               " WHERE id = ? AND status = 'ready'", (media_id,)).fetchone()
            return (media_info(row), bytes(row[9])) if row and row[9] is not None else None
        return await self._run(unit)

    async def purge_media(self, now: float) -> int:
        """Delete the files kept past their expiry; how many went."""
        def unit(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM inbound_media WHERE expires_at <= ?",
                                (now,)).rowcount
        return await self._tx(unit)

    async def release_media_claims(self, holder: str | None = None) -> int:
        def unit(conn: sqlite3.Connection) -> int:
            where, args = ("", ()) if holder is None else (" AND claimed_by = ?", (holder,))
            return conn.execute(
                "UPDATE inbound_media SET claimed_until = NULL, claimed_by = NULL,"
                " next_attempt_at = MIN(next_attempt_at, ?) WHERE status = 'pending'"
                f" AND claimed_until IS NOT NULL{where}", (0.0, *args)).rowcount
        return await self._tx(unit)

    async def next_media_due(self) -> float | None:
        def unit(conn: sqlite3.Connection) -> float | None:
            row = conn.execute("SELECT MIN(next_attempt_at) FROM inbound_media"
                               " WHERE status = 'pending'").fetchone()
            return row[0] if row else None
        return await self._run(unit)

    async def server_key(self, name: str) -> bytes:
        """The secret called `name`, made (32 random bytes) the first time it is asked for."""
        def unit(conn: sqlite3.Connection) -> bytes:
            conn.execute("INSERT INTO server_keys (name, value) VALUES (?, ?)"
                         " ON CONFLICT (name) DO NOTHING", (name, secrets.token_bytes(32)))
            return bytes(conn.execute("SELECT value FROM server_keys WHERE name = ?",
                                      (name,)).fetchone()[0])
        return await self._tx(unit)
