"""Inbound media on PostgreSQL (see bot/store/sqlite/media.py); `add_media`
is a step of `commit_inbound`'s one statement."""

from __future__ import annotations

import secrets
from typing import Any

from bot.effects import MediaDraft
from bot.store.models import MediaInfo, MediaJob, MediaResult
from bot.store.postgres.effects import PostgresEffects, Statement
from bot.store.postgres.pool import Conn, affected

_JOB_COLUMNS = ("id, provider, instance_id, kind, provider_media_id, source_url, mime_type,"
                " filename, attempts")
_INFO_COLUMNS = "id, status, kind, mime_type, filename, size, sha256, error, expires_at"


def add_media(st: Statement, media: MediaDraft, now: float, gate: str) -> None:
    """Queue the file's fetch in `st`, if `gate` (an SQL condition) holds."""
    at = st.arg(now, "float8")
    values = ", ".join([
        st.arg(media.id, "text"), st.arg(media.provider, "text"),
        st.arg(media.instance_id, "integer"), st.arg(media.kind, "text"),
        st.arg(media.provider_media_id, "text"), st.arg(media.source_url, "text"),
        st.arg(media.mime_type, "text"), st.arg(media.filename, "text"), "'pending'",
        at, at, st.arg(media.expires_at, "float8")])
    st.step("media", (
        "INSERT INTO inbound_media (id, provider, instance_id, kind, provider_media_id,"
        " source_url, mime_type, filename, status, next_attempt_at, created_at, expires_at)"
        f" SELECT {values} WHERE {gate} ON CONFLICT (id) DO NOTHING"))


def _info(row: Any) -> MediaInfo:
    return MediaInfo(id=row[0], status=row[1], kind=row[2], mime_type=row[3], filename=row[4],
                     size=row[5], sha256=row[6], error=row[7], expires_at=row[8])


class PostgresMedia(PostgresEffects):
    async def claim_media(self, now: float, limit: int, lease: float,
                          holder: str | None = None) -> list[MediaJob]:
        rows = await self._pool.fetch(
            f"UPDATE inbound_media m SET claimed_until = $2, claimed_by = $3,"
            " next_attempt_at = $2 FROM (SELECT id FROM inbound_media WHERE status = 'pending'"
            " AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $4"
            " FOR UPDATE SKIP LOCKED) AS due WHERE m.id = due.id"
            f" RETURNING {', '.join('m.' + c.strip() for c in _JOB_COLUMNS.split(','))}",
            now, now + lease, holder or self.worker_id, limit)
        return [MediaJob(id=r[0], provider=r[1], instance_id=r[2], kind=r[3],
                         provider_media_id=r[4], source_url=r[5], mime_type=r[6],
                         filename=r[7], attempts=r[8]) for r in rows]

    async def finish_media(self, media_id: str, result: MediaResult, now: float) -> int:
        async def unit(conn: Conn) -> int:
            if result.content is not None:
                await conn.execute(
                    "UPDATE inbound_media SET status = 'ready', content = $2, size = $3,"
                    " sha256 = $4, mime_type = COALESCE($5, mime_type), error = NULL,"
                    " attempts = attempts + 1, fetched_at = $6, claimed_until = NULL,"
                    " claimed_by = NULL WHERE id = $1",
                    media_id, result.content, len(result.content), result.sha256,
                    result.mime_type, now)
            elif result.retry_at is not None:
                await conn.execute(
                    "UPDATE inbound_media SET error = $2, attempts = attempts + 1,"
                    " next_attempt_at = $3, claimed_until = NULL, claimed_by = NULL"
                    " WHERE id = $1", media_id, result.error, result.retry_at)
                return 0
            else:
                await conn.execute(
                    "UPDATE inbound_media SET status = 'failed', error = $2,"
                    " attempts = attempts + 1, claimed_until = NULL, claimed_by = NULL"
                    " WHERE id = $1", media_id, result.error)
            status = await conn.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE media_id = $1"
                " AND status = 'pending' AND attempts = 0 AND claimed_until IS NULL"
                " AND next_attempt_at > $2", media_id, now)
            released = affected(status)
            if released:
                self._notify(conn, "deliveries")
            return released
        return await self._tx(unit)

    async def media_info(self, media_id: str) -> MediaInfo | None:
        row = await self._pool.fetchrow(
            f"SELECT {_INFO_COLUMNS} FROM inbound_media WHERE id = $1", media_id)
        return _info(row) if row else None

    async def media_content(self, media_id: str) -> tuple[MediaInfo, bytes] | None:
        row = await self._pool.fetchrow(
            f"SELECT {_INFO_COLUMNS}, content FROM inbound_media WHERE id = $1"
            " AND status = 'ready'", media_id)
        return (_info(row), bytes(row[9])) if row and row[9] is not None else None

    async def purge_media(self, now: float) -> int:
        status = await self._pool.execute("DELETE FROM inbound_media WHERE expires_at <= $1",
                                          now)
        return affected(status)

    async def release_media_claims(self, holder: str | None = None) -> int:
        return await self._release("inbound_media", "pending", holder)

    async def next_media_due(self) -> float | None:
        due: float | None = await self._pool.fetchval(
            "SELECT MIN(next_attempt_at) FROM inbound_media WHERE status = 'pending'")
        return due

    async def server_key(self, name: str) -> bytes:
        await self._pool.execute("INSERT INTO server_keys (name, value) VALUES ($1, $2)"
                                 " ON CONFLICT (name) DO NOTHING", name,
                                 secrets.token_bytes(32))
        return bytes(await self._pool.fetchval("SELECT value FROM server_keys WHERE name = $1",
                                               name))



