"""What PostgreSQL's units of work write alike: messages queued, deliveries, history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bot.effects import DeliveryDraft, OutboundDraft
from bot.store.models import OutboundRow
from bot.store.postgres.pool import CHANNELS, LOCK_STATUS, Conn, PostgresPool
from bot.store.queries import QUERIES, numbered
from bot.store.rows import REG_COLUMNS, outbound_row
from bot.store.rules import disabled_error_sql
from bot.store.wakeups import Queue


def registration_of(columns: str, instance: str, number: str, user_id: str) -> str:
    """SQL: the registration on `instance` of `number`, else the one known by
    `user_id` (SQL expressions), as `columns`: two index lookups, as SQLite's
    REG_OF_USER. (One lookup with `number = .. OR user_id = ..`, planned while
    the table was new, read every row of the instance for each message.)"""
    return (f"SELECT {columns} FROM (SELECT {columns}, 0 AS rank FROM registrations"
            f" WHERE instance_id = {instance} AND number = {number}"
            f" UNION ALL SELECT {columns}, 1 FROM registrations"
            f" WHERE instance_id = {instance} AND user_id = {user_id}) AS reg"
            " ORDER BY rank LIMIT 1")


# A user's registration on an instance ($1) by number or user id ($2), the
# number's own row first (see bot/store/sqlite/effects.py's REG_OF_USER).
REG_OF_USER = registration_of(f"{REG_COLUMNS}, keyword_at", "$1", "$2", "$2")


class Statement:
    """One statement of several steps (`WITH a AS (INSERT ...), b AS (...) ...`):
    writes that would each cost a round trip travel in one. Its parameters are
    numbered as they are added; every step sees the statement's one snapshot,
    so no two steps may touch the same row."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self._steps: list[str] = []
        self._named: dict[str, str] = {}

    def arg(self, value: Any, cast: str = "") -> str:
        """A parameter's placeholder; `cast` where nothing else gives its type
        (a value in a SELECT list)."""
        self.args.append(value)
        return f"${len(self.args)}" + (f"::{cast}" if cast else "")

    def once(self, name: str, value: Any, cast: str) -> str:
        """A parameter the steps share under `name`, added at its first use (one
        never used is an error: its type cannot be told)."""
        if name not in self._named:
            self._named[name] = self.arg(value, cast)
        return self._named[name]

    def step(self, name: str, sql: str) -> None:
        self._steps.append(f"{name} AS ({sql})")

    def sql(self, main: str) -> str:
        return (f"WITH {', '.join(self._steps)} " if self._steps else "") + main


# A delivery's last_error when its endpoint (`e`, a row of webhook_endpoints) is disabled.
_DISABLED_ERROR_E = disabled_error_sql("e.disabled_reason")


_GET_OUTBOUND, _ = numbered(QUERIES["get_outbound"])


class PostgresEffects(PostgresPool):
    """The writes several units share, in the unit's transaction: queued
    messages and their history, webhook deliveries, linked user ids."""

    def _notifies(self, st: Statement, queues: Iterable[Queue], when: str
                  ) -> tuple[str, list[str]]:
        """The NOTIFYs of an autocommitted statement that fills `queues`, sent
        inside it (so they go with its commit) if `when`, an SQL condition,
        holds: SQL counting them, and the channels left for after its commit
        (`_committed`). Coalesced as `_finish` does (wakes.py); the channels
        travel as a parameter, so the statement's text does not vary with them."""
        channels = {CHANNELS[queue] for queue in queues}
        due = self._coalesced.now(channels)
        sql = (f"(SELECT COUNT(pg_notify(c, {st.arg(self.worker_id, 'text')}))"
               f" FROM unnest(CASE WHEN {when} THEN {st.arg(due, 'text[]')} END) AS c)")
        return sql, sorted(channels.difference(due))

    @staticmethod
    async def _link_user(conn: Conn, instance_id: int, number: str, user_id: str) -> None:
        """A message carrying both a number and a user id: the registration first
        known by the id becomes the number's (see SqliteStore._link_user)."""
        await conn.execute(
            "UPDATE registrations SET number = $2 WHERE instance_id = $1 AND number = $3"
            " AND NOT EXISTS (SELECT 1 FROM registrations WHERE instance_id = $1"
            " AND number = $2)", instance_id, number, user_id)
        gone = await conn.fetchval("DELETE FROM registrations WHERE instance_id = $1"
                                   " AND number = $2 RETURNING last_inbound_at",
                                   instance_id, user_id)
        await conn.execute(
            "UPDATE registrations SET user_id = $3, last_inbound_at = GREATEST("
            "COALESCE(last_inbound_at, 0), COALESCE($4, 0)) WHERE instance_id = $1"
            " AND number = $2", instance_id, number, user_id, gone)
        await conn.execute(
            "UPDATE send_recipients SET recipient = $1 WHERE recipient = $2 AND NOT EXISTS"
            " (SELECT 1 FROM send_recipients s WHERE s.subscriber_id ="
            " send_recipients.subscriber_id AND s.recipient = $1)", number, user_id)

    @staticmethod
    def _add_outbound(st: Statement, drafts: Sequence[OutboundDraft],
                      now: float | Sequence[float], gate: str = "TRUE") -> None:
        """Queue messages in `st` (if `gate`, an SQL condition, holds), in order,
        each with its history's first row; `now` is when, for all of them or
        one time per draft (sends written together, each at its own time)."""
        types = ("text", "integer", "text", "text", "text", "text", "text", "text", "text",
                 "bytea", "text", "text")
        columns = zip(*((d.id, d.instance_id, d.to, d.group_id, d.type, d.text, d.caption,
                         d.filename, d.mime, d.media, d.subscriber_id, d.template)
                        for d in drafts), strict=True)
        arrays = ", ".join(st.arg(list(values), f"{kind}[]")
                           for values, kind in zip(columns, types, strict=True))
        names = ("id, instance_id, to_number, group_id, type, text, caption, filename, mime,"
                 " media, subscriber_id, template")
        if isinstance(now, (int, float)):
            at, each = st.once("now", now, "float8"), ""
        else:
            arrays += ", " + st.arg(list(now), "float8[]")
            at, each = "at", ", at"
        st.step("out", (
            f"INSERT INTO outbound ({names}, status, next_attempt_at, created_at, updated_at)"
            f" SELECT {names}, 'queued', {at}, {at}, {at} FROM unnest({arrays})"
            f" WITH ORDINALITY AS d ({names}{each}, ord) WHERE {gate} ORDER BY ord"
            " RETURNING id, created_at"))
        st.step("hist", "INSERT INTO outbound_history (message_id, at, status)"
                        " SELECT id, created_at, 'queued' FROM out")

    async def _insert_outbound(self, conn: Conn, drafts: Sequence[OutboundDraft],
                               now: float) -> None:
        """Queue messages (see `_add_outbound`) in the transaction open on `conn`."""
        if not drafts:
            return
        st = Statement()
        self._add_outbound(st, drafts, now)
        await conn.execute(st.sql("SELECT 1"), *st.args)
        self._notify(conn, "outbound")

    @staticmethod
    async def _record(conn: Conn, message_id: str, at: float, status: str,
                      code: int | None = None, title: str | None = None) -> None:
        """One row of a message's status history, in the caller's transaction."""
        await conn.execute("INSERT INTO outbound_history (message_id, at, status, error_code,"
                           " error_title) VALUES ($1, $2, $3, $4, $5)",
                           message_id, at, status, code, title)

    @staticmethod
    async def _outbound_of(conn: Conn, message_id: str) -> OutboundRow:
        """A message known to be there, read in the caller's transaction."""
        return outbound_row(await conn.fetchrow(_GET_OUTBOUND, message_id))

    @staticmethod
    async def _lock_status(conn: Conn, provider_message_id: str) -> None:
        """Statuses of one provider message, and the send's record of its id,
        apply one after another: none is parked after its message's id landed."""
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_STATUS,
                           provider_message_id)

    @staticmethod
    async def _last_sender(conn: Conn, instance_id: int, sender: str,
                           group_id: str | None) -> tuple[str, float] | None:
        """The subscriber that most recently sent to this chat (the number, or the
        group) on this instance, and when; auto-replies (no subscriber) don't count."""
        column, value = ("group_id", group_id) if group_id is not None else ("to_number", sender)
        row = await conn.fetchrow(
            f"SELECT subscriber_id, created_at FROM outbound WHERE instance_id = $1"
            f" AND {column} = $2 AND subscriber_id IS NOT NULL"
            " ORDER BY created_at DESC LIMIT 1", instance_id, value)
        return (row[0], row[1]) if row else None

    @staticmethod
    def _add_deliveries(st: Statement, drafts: Sequence[DeliveryDraft], now: float,
                        gate: str = "TRUE") -> str:
        """Queue deliveries in `st` (if `gate`, an SQL condition, holds); those for a
        disabled endpoint are recorded failed at once (they can be replayed once
        the endpoint is enabled again). The count of pending ones, as SQL."""
        at = st.once("now", now, "float8")
        columns = zip(*((d.id, d.subscriber_id, d.endpoint_key, d.url, d.format, d.event_type,
                         d.payload, d.media_id) for d in drafts), strict=True)
        arrays = ", ".join(st.arg(list(values), "text[]") for values in columns)
        # A delivery waiting for its file is due when the fetch ends, or at not_before.
        held = [d.not_before for d in drafts]
        due = at
        if any(held):
            arrays += ", " + st.arg(held, "float8[]")
            due = f"COALESCE(d.not_before, {at})"
        st.step("dlv", (
            "INSERT INTO webhook_deliveries (id, subscriber_id, endpoint_key, url, format,"
            " event_type, payload, status, next_attempt_at, last_error, created_at, updated_at,"
            " media_id)"
            " SELECT d.id, d.sub, d.key, d.url, d.format, d.event_type, d.payload,"
            f" CASE WHEN e.subscriber_id IS NULL THEN 'pending' ELSE 'failed' END, {due},"
            f" CASE WHEN e.subscriber_id IS NOT NULL THEN {_DISABLED_ERROR_E} END,"
            f" {at}, {at}, d.media_id FROM unnest({arrays}) WITH ORDINALITY"
            " AS d (id, sub, key, url, format, event_type, payload, media_id"
            + (", not_before" if any(held) else "") + ", ord)"
            " LEFT JOIN webhook_endpoints e ON e.subscriber_id = d.sub"
            f" AND e.endpoint_key = d.key AND e.disabled_at IS NOT NULL WHERE {gate}"
            " ORDER BY d.ord RETURNING status"))
        return "(SELECT COUNT(*) FROM dlv WHERE status = 'pending')"

    async def _insert_deliveries(self, conn: Conn, drafts: Sequence[DeliveryDraft],
                                 now: float) -> None:
        """Queue deliveries (see `_add_deliveries`) in the transaction open on `conn`."""
        if not drafts:
            return
        st = Statement()
        pending = self._add_deliveries(st, drafts, now)
        if await conn.fetchval(st.sql(f"SELECT {pending}"), *st.args):
            self._notify(conn, "deliveries")
