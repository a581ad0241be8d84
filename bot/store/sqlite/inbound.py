"""SQLite: inbound messages and chat state (the pipeline's port)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from bot.effects import DeliveryDraft, Effects
from bot.events import ProviderNotice, StatusUpdate
from bot.store.models import (
    Group,
    InboundContext,
    OutboundRow,
    Registration,
)
from bot.store.queries import QUERIES
from bot.store.rows import REG_COLUMNS as _REG_COLUMNS
from bot.store.rows import registration_row as _registration
from bot.store.rules import (
    group_name_key,
    inbound_time,
    notice_values,
    status_advances,
    status_time,
    unknown_word,
)
from bot.store.sqlite.effects import KEYWORD_AT, SqliteEffects, reg_of_user
from bot.store.sqlite.media import insert_media

_REGISTRATION_CONFLICT = QUERIES["registration_conflict"]


class SqliteInbound(SqliteEffects):
    """The `InboundStore` port on SQLite."""

    async def load_inbound_context(self, instance_id: int, sender: str,
                                   group_id: str | None,
                                   user_id: str | None = None) -> InboundContext:
        def unit(conn: sqlite3.Connection) -> InboundContext:
            reg = reg_of_user(conn, instance_id, sender, user_id)
            group = None
            if group_id is not None:
                row = conn.execute("SELECT instance_id, group_id, name, registered_at FROM groups"
                                   " WHERE instance_id = ? AND group_id = ?",
                                   (instance_id, group_id)).fetchone()
                if row:
                    group = Group(instance_id=row[0], group_id=row[1], name=row[2],
                                  registered_at=row[3])
            chat = f"group:{group_id}" if group_id is not None else sender
            marks = dict(conn.execute("SELECT kind, last_at FROM auto_replies "
                                      "WHERE instance_id = ? AND number = ?",
                                      (instance_id, chat)).fetchall())
            return InboundContext(registration=_registration(reg) if reg else None, group=group,
                                  last_auto_reply_at=marks.get("any"),
                                  last_hint_at=marks.get("hint"),
                                  last_sender=self._last_sender(conn, instance_id,
                                                                reg[1] if reg else sender,
                                                                group_id),
                                  keyword_at=reg[KEYWORD_AT] if reg else None)
        return await self._lookup(unit)

    async def release_chat(self, instance_id: int, chat: str) -> None:
        """Nothing is held between a read and its commit here (one writer)."""

    async def record_notice(self, notice: ProviderNotice, now: float) -> None:
        row = notice_values(notice, now)
        await self._tx(lambda conn: conn.execute(
            "INSERT INTO provider_notices (provider, kind, instance_id, event, detail, at,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?)", row))

    async def our_message_ids(self, instance_id: int, provider_message_ids: Sequence[str]
                              ) -> dict[str, str]:
        ids = list(dict.fromkeys(provider_message_ids))[:50]

        def unit(conn: sqlite3.Connection) -> dict[str, str]:
            marks = ",".join("?" * len(ids))
            return dict(conn.execute(f"SELECT provider_message_id, id FROM outbound"
                                     f" WHERE provider_message_id IN ({marks})"
                                     f" AND instance_id = ?", (*ids, instance_id)).fetchall())
        return await self._lookup(unit) if ids else {}

    async def commit_inbound(self, effects: Effects, now: float) -> bool:
        msg = effects.inbound

        def unit(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO inbound (provider, provider_message_id, instance_id, sender, user_id,"
                " group_id, kind, text, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider, provider_message_id) DO NOTHING",
                (msg.provider, msg.provider_message_id, msg.instance_id, msg.sender, msg.user_id,
                 msg.group.id if msg.group else None, msg.kind, msg.text, now))
            if cur.rowcount == 0:
                return False  # a redelivery: the first delivery's effects stand
            private = msg.group is None
            if private and msg.user_id and msg.user_id != msg.sender:
                self._link_user(conn, msg.instance_id, msg.sender, msg.user_id)
            reg = effects.registration
            if reg is not None:
                conn.execute(
                    f"INSERT INTO registrations ({_REG_COLUMNS}, keyword_at)"
                    f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) {_REGISTRATION_CONFLICT}",
                    (reg.instance_id, reg.number, reg.locale, reg.status, reg.keyword_subscriber,
                     now, now, None if reg.status == "active" else now,
                     msg.user_id if private else None, None,
                     now if reg.keyword_subscriber else None))
            if private:  # the user's own message opens their window (never ours)
                conn.execute("UPDATE registrations SET last_inbound_at = MAX(?,"
                             " COALESCE(last_inbound_at, 0)) WHERE instance_id = ?"
                             " AND number = ?",
                             (inbound_time(msg.timestamp, now), msg.instance_id, msg.sender))
            if effects.group is not None:
                g = effects.group
                conn.execute(
                    "INSERT INTO groups (instance_id, group_id, name, name_key, registered_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id, group_id) DO UPDATE SET"
                    " name = excluded.name, name_key = excluded.name_key",
                    (g.instance_id, g.group_id, g.name, group_name_key(g.name), now))
            for kind in effects.auto_reply_marks:
                conn.execute(
                    "INSERT INTO auto_replies (instance_id, number, kind, last_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (instance_id, number, kind)"
                    " DO UPDATE SET last_at = excluded.last_at",
                    (msg.instance_id, msg.chat, kind, now))
            self._insert_outbound(conn, effects.replies, now)
            self._insert_deliveries(conn, effects.deliveries, now)
            if effects.media is not None:
                insert_media(conn, effects.media, now)
                self._notify(conn, "media")
            return True
        return await self._tx(unit)

    async def apply_status(self, update: StatusUpdate, now: float,
                           route: Callable[[OutboundRow], list[DeliveryDraft]] | None = None
                           ) -> OutboundRow | None:
        def unit(conn: sqlite3.Connection) -> OutboundRow | None:
            row = conn.execute("SELECT id, status FROM outbound WHERE provider_message_id = ?",
                               (update.provider_message_id,)).fetchone()
            unknown = unknown_word(update)
            if unknown is not None:  # a word added later: the history tells it, no more
                if row is not None:
                    self._record(conn, row[0], status_time(update, now), unknown)
                return None
            if row is None:
                # Maybe ours, before the send's answer recorded its id: park it
                # (the best status wins); parked ones of others age out in a day.
                early = conn.execute("SELECT status FROM early_statuses"
                                     " WHERE provider_message_id = ?",
                                     (update.provider_message_id,)).fetchone()
                if early is None or status_advances(early[0], update.status):
                    conn.execute("INSERT OR REPLACE INTO early_statuses (provider_message_id,"
                                 " status, error_code, error_title, received_at)"
                                 " VALUES (?, ?, ?, ?, ?)",
                                 (update.provider_message_id, update.status, update.error_code,
                                  update.error_title, now))
                conn.execute("DELETE FROM early_statuses WHERE received_at < ?", (now - 86400,))
                return None
            if update.pricing_category is not None:  # told with sent and delivered alike
                conn.execute("UPDATE outbound SET pricing_category = ?, billable = ?"
                             " WHERE id = ?", (update.pricing_category, None if
                                               update.billable is None
                                               else int(update.billable), row[0]))
            # Media kept for a provider to fetch (mark_sent keep_media) are fetched
            # by the time it reports any status.
            conn.execute("UPDATE outbound SET media = NULL WHERE id = ? AND media IS NOT NULL",
                         (row[0],))
            # Statuses arrive out of order; never move backwards (read -> delivered).
            if not status_advances(row[1], update.status):
                return None
            conn.execute("UPDATE outbound SET status = ?, error_code = COALESCE(?, error_code),"
                         " error_title = COALESCE(?, error_title), updated_at = ? WHERE id = ?",
                         (update.status, update.error_code, update.error_title, now, row[0]))
            self._record(conn, row[0], status_time(update, now), update.status,
                         update.error_code, update.error_title)
            got = self._outbound_of(conn, row[0])
            if route is not None:  # webhook deliveries commit with the status they tell of
                self._insert_deliveries(conn, route(got), now)
            return got
        return await self._tx(unit)

    async def opt_out(self, number: str, instance_ids: Sequence[int], default_locale: str,
                      now: float,
                      route: Callable[[InboundContext], list[DeliveryDraft]] | None = None
                      ) -> list[tuple[Registration, str | None]]:
        """Opt a number out by hand on each instance (an admin's act, no message sent).

        A number that never registered there is recorded opted-out too, like a STOP.
        `route` is called for each active registration this ends, with the user's
        context there before; the deliveries it names commit with the opt-out.
        Returns each instance's registration after, with its status before (None
        when there was none)."""
        def unit(conn: sqlite3.Connection) -> list[tuple[Registration, str | None]]:
            out = []
            for instance_id in instance_ids:
                row = reg_of_user(conn, instance_id, number, number)
                before = _registration(row) if row else None
                key = before.number if before is not None else number
                if before is not None and before.active and route is not None:
                    state = InboundContext(
                        registration=before, group=None, last_auto_reply_at=None,
                        last_hint_at=None, keyword_at=row[KEYWORD_AT],
                        last_sender=self._last_sender(conn, instance_id, key, None))
                    self._insert_deliveries(conn, route(state), now)
                if before is None or before.active:
                    conn.execute(QUERIES["opt_out_registration"], {
                        "instance_id": instance_id, "number": key, "locale": default_locale,
                        "now": now})
                after = conn.execute(f"SELECT {_REG_COLUMNS} FROM registrations"
                                     " WHERE instance_id = ? AND number = ?",
                                     (instance_id, key)).fetchone()
                out.append((_registration(after), before.status if before else None))
            return out
        return await self._tx(unit)
