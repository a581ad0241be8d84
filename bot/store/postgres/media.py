"""Inbound media on PostgreSQL (see bot/store/sqlite/media.py); `add_media`
is a step of `commit_inbound`'s one statement."""

from __future__ import annotations

import functools
import secrets
import time
from typing import Any, NamedTuple

from bot.effects import MediaDraft
from bot.store.models import MediaInfo, MediaJob, MediaResult
from bot.store.postgres.batches import Batches
from bot.store.postgres.effects import PostgresEffects, Statement
from bot.store.postgres.pool import affected

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


# Final ends kept in memory for media_info: the deliveries of a file released
# by its end are claimed and sent within moments, unless their endpoint is
# behind (then they read the row).
ENDED_KEPT = 1024


class _Finish(NamedTuple):
    """A fetch's end, to record (`finish_media`)."""

    media_id: str
    result: MediaResult
    now: float


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
        """See SqliteStore.finish_media. Fetches ending while one batch is written
        go together in the next (group commit: the media worker runs several
        at once), in one autocommitted statement: the files, the deliveries
        released (never before their file is committed: the same commit) and
        the other processes' wake-up."""
        return await self._finished.add(_Finish(media_id, result, now))

    @functools.cached_property
    def _finished(self) -> Batches[_Finish, int]:
        return Batches(self._write_finished, self._start)

    async def _write_finished(self, ends: list[_Finish]) -> list[int]:
        # One round trip, autocommitted: see pg_migrations/0016_finish_media.sql.
        st = Statement()
        arrays = ", ".join(st.arg(list(column), kind) for column, kind in zip(
            zip(*((e.media_id, e.result.content, e.result.sha256, e.result.mime_type,
                   e.result.error, e.result.retry_at, e.now) for e in ends), strict=True),
            ("text[]", "bytea[]", "text[]", "text[]", "text[]", "float8[]", "float8[]"),
            strict=True))
        st.step("ended", (
            f"SELECT r.ord, f.* FROM unnest({arrays}) WITH ORDINALITY"
            " AS r (id, content, sha256, mime_type, error, retry_at, at, ord),"
            " LATERAL wagate_finish_media(r.id, r.content, r.sha256, r.mime_type, r.error,"
            " r.retry_at, r.at) AS f"))
        notifies, unsent = self._notifies(st, ["deliveries"],
                                          "(SELECT SUM(released) FROM ended) > 0")
        rows = await self._statement(lambda conn: conn.fetch(st.sql(
            "SELECT ended.released, ended.file_kind, ended.file_mime, ended.file_name,"
            f" ended.file_expires FROM ended, {notifies} AS w ORDER BY ended.ord"), *st.args))
        for end, row in zip(ends, rows, strict=True):
            if row[1] is not None:  # final, its row still there
                self._keep_info(MediaInfo(
                    id=end.media_id, status="failed" if end.result.content is None else "ready",
                    kind=row[1], mime_type=row[2], filename=row[3],
                    size=None if end.result.content is None else len(end.result.content),
                    sha256=end.result.sha256, error=end.result.error, expires_at=row[4]))
        if any(row[0] for row in rows):
            self._committed(["deliveries"], unsent)
        return [row[0] for row in rows]

    @functools.cached_property
    def _ended(self) -> dict[str, MediaInfo]:
        """The files this process saw end for good, most recent last: a final
        row changes no more until it is deleted past its expiry, and the
        deliveries its end released read it (media_info) moments later."""
        return {}

    def _keep_info(self, info: MediaInfo) -> None:
        self._ended.pop(info.id, None)
        self._ended[info.id] = info
        if len(self._ended) > ENDED_KEPT:
            del self._ended[next(iter(self._ended))]

    async def media_info(self, media_id: str) -> MediaInfo | None:
        known = self._ended.get(media_id)
        if known is not None and known.expires_at > time.time():  # else maybe deleted
            return known
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



