"""What SQLite's units of work write alike: messages queued, deliveries, history."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from bot.effects import DeliveryDraft, OutboundDraft
from bot.store.models import OutboundRow
from bot.store.queries import QUERIES
from bot.store.rows import REG_COLUMNS as _REG_COLUMNS
from bot.store.rows import outbound_row
from bot.store.rules import disabled_error
from bot.store.sqlite.engine import SqliteEngine

KEYWORD_AT = 10  # its index after _REG_COLUMNS in `SELECT {_REG_COLUMNS}, keyword_at`
# A user's registration on an instance, by number or by the provider's user id;
# the row keyed on the number first (a user first known by the id is linked
# to the number by the first message that carries both). Two indexed lookups:
# an OR would walk every registration of the instance.
_REG_OF_USER = (f"SELECT {_REG_COLUMNS}, keyword_at, 0 AS rank FROM registrations"
                " WHERE instance_id = ? AND number = ?"
                f" UNION ALL SELECT {_REG_COLUMNS}, keyword_at, 1 FROM registrations"
                " WHERE instance_id = ? AND user_id = ? ORDER BY rank LIMIT 1")


def reg_of_user(conn: sqlite3.Connection, instance_id: int, number: str | None,
                 user_id: str | None) -> tuple[Any, ...] | None:
    row: tuple[Any, ...] | None = conn.execute(
        _REG_OF_USER, (instance_id, number, instance_id, user_id or number)).fetchone()
    return row


class SqliteEffects(SqliteEngine):
    """The writes several units share, in the unit's transaction: queued
    messages and their history, webhook deliveries, linked user ids."""

    @staticmethod
    def _link_user(conn: sqlite3.Connection, instance_id: int, number: str,
                   user_id: str) -> None:
        """A message carrying both a number and a user id: the registration first
        known by the id becomes the number's (one registration, not two), and the
        recipient it counted as for quotas becomes the number too."""
        conn.execute("UPDATE OR IGNORE registrations SET number = ? WHERE instance_id = ?"
                     " AND number = ?", (number, instance_id, user_id))
        # Both existed (the number registered apart): the number's row stands,
        # with the later window of the two.
        gone = conn.execute("DELETE FROM registrations WHERE instance_id = ? AND number = ?"
                            " RETURNING last_inbound_at", (instance_id, user_id)).fetchone()
        conn.execute("UPDATE registrations SET user_id = ?, last_inbound_at = MAX("
                     "COALESCE(last_inbound_at, 0), COALESCE(?, 0)) WHERE instance_id = ?"
                     " AND number = ?", (user_id, gone[0] if gone else None, instance_id,
                                         number))
        conn.execute("UPDATE OR IGNORE send_recipients SET recipient = ? WHERE recipient = ?",
                     (number, user_id))

    def _insert_outbound(self, conn: sqlite3.Connection, drafts: list[OutboundDraft],
                         now: float) -> None:
        if not drafts:
            return
        conn.executemany(
            "INSERT INTO outbound (id, instance_id, to_number, group_id, type, text, caption,"
            " filename, mime, media, subscriber_id, template, status, next_attempt_at,"
            " created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
            [(d.id, d.instance_id, d.to, d.group_id, d.type, d.text, d.caption, d.filename,
              d.mime, d.media, d.subscriber_id, d.template, now, now, now) for d in drafts])
        conn.executemany("INSERT INTO outbound_history (message_id, at, status)"
                         " VALUES (?, ?, 'queued')", [(d.id, now) for d in drafts])
        self._notify(conn, "outbound")

    @staticmethod
    def _record(conn: sqlite3.Connection, message_id: str, at: float, status: str,
                code: int | None = None, title: str | None = None) -> None:
        """One row of a message's status history, in the caller's transaction."""
        conn.execute("INSERT INTO outbound_history (message_id, at, status, error_code,"
                     " error_title) VALUES (?, ?, ?, ?, ?)",
                     (message_id, at, status, code, title))

    @staticmethod
    def _last_sender(conn: sqlite3.Connection, instance_id: int, sender: str,
                     group_id: str | None) -> tuple[str, float] | None:
        """The subscriber that most recently sent to this chat (the number, or the
        group) on this instance, and when; auto-replies (no subscriber) don't count."""
        if group_id is not None:
            row = conn.execute("SELECT subscriber_id, created_at FROM outbound"
                               " WHERE instance_id = ? AND group_id = ?"
                               " AND subscriber_id IS NOT NULL"
                               " ORDER BY created_at DESC LIMIT 1",
                               (instance_id, group_id)).fetchone()
        else:
            row = conn.execute("SELECT subscriber_id, created_at FROM outbound"
                               " WHERE instance_id = ? AND to_number = ?"
                               " AND subscriber_id IS NOT NULL"
                               " ORDER BY created_at DESC LIMIT 1",
                               (instance_id, sender)).fetchone()
        return (row[0], row[1]) if row else None

    @staticmethod
    def _outbound_of(conn: sqlite3.Connection, message_id: str) -> OutboundRow:
        """A message known to be there, read in the caller's transaction."""
        return outbound_row(conn.execute(QUERIES["get_outbound"], {"id": message_id}).fetchone())

    @staticmethod
    def _disabled_endpoints(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
        """Each disabled endpoint, and the last_error its deliveries fail with."""
        return {(r[0], r[1]): disabled_error(r[2]) for r in conn.execute(
            "SELECT subscriber_id, endpoint_key, disabled_reason FROM webhook_endpoints"
            " WHERE disabled_at IS NOT NULL")}

    def _insert_deliveries(self, conn: sqlite3.Connection, drafts: Sequence[DeliveryDraft],
                           now: float) -> None:
        """Queue deliveries; those for a disabled endpoint are recorded failed at once
        (they can be replayed once the endpoint is enabled again)."""
        if not drafts:
            return
        disabled = self._disabled_endpoints(conn)
        rows = []
        for d in drafts:
            reason = disabled.get((d.subscriber_id, d.endpoint_key))
            rows.append((d.id, d.subscriber_id, d.endpoint_key, d.url, d.format, d.event_type,
                         d.payload, "pending" if reason is None else "failed",
                         d.not_before or now, reason, now, now, d.media_id))
        conn.executemany(
            "INSERT INTO webhook_deliveries (id, subscriber_id, endpoint_key, url, format,"
            " event_type, payload, status, next_attempt_at, last_error, created_at, updated_at,"
            " media_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if any(row[7] == "pending" for row in rows):
            self._notify(conn, "deliveries")
