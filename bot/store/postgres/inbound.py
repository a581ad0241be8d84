"""PostgreSQL: inbound messages and chat state (the pipeline's port)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from bot.effects import DeliveryDraft, Effects
from bot.events import ProviderNotice, StatusUpdate
from bot.store.models import (
    Group,
    InboundContext,
    OutboundRow,
    Registration,
)
from bot.store.postgres.effects import REG_OF_USER, Statement
from bot.store.postgres.holds import ChatHolds, Key, Op
from bot.store.postgres.media import add_media
from bot.store.postgres.pool import LOCK_CHAT, Conn, chat_key, chat_lock
from bot.store.queries import QUERIES, numbered
from bot.store.rows import (
    REG_COLUMNS,
    registration_row,
)
from bot.store.rules import (
    group_name_key,
    inbound_time,
    notice_values,
    status_advances,
    status_time,
    unknown_word,
)
from bot.store.wakeups import Queue

_INSERT_INBOUND = ("INSERT INTO inbound (provider, provider_message_id, instance_id, sender,"
                   " user_id, group_id, kind, text, received_at) VALUES ({})"
                   " ON CONFLICT (provider, provider_message_id) DO NOTHING RETURNING seq")

EARLY_STATUS_AGE = 86400.0

log = logging.getLogger("wagate.store")


def _chat(group_id: str | None, sender: str) -> str:
    return f"group:{group_id}" if group_id is not None else sender


def _links_user(effects: Effects) -> bool:
    """A private message carrying both a number and another user id: its write
    links them (`_link_user`), in several statements."""
    msg = effects.inbound
    return msg.group is None and bool(msg.user_id) and msg.user_id != msg.sender


_REGISTRATION_CONFLICT = QUERIES["registration_conflict"]
_OPT_OUT, _OPT_OUT_ARGS = numbered(QUERIES["opt_out_registration"])


class PostgresInbound(ChatHolds):
    """The `InboundStore` port on PostgreSQL."""

    async def load_inbound_context(self, instance_id: int, sender: str,
                                   group_id: str | None,
                                   user_id: str | None = None) -> InboundContext:
        """The chat's state, read once the chat's lock is taken. The lock (at
        session level, on a connection kept for the chat) holds the chat against
        every other process until `commit_inbound` for the chat commits: two
        processes handling one chat's messages at once decide one after the
        other, each on the state the other left. Read with the reads of the
        chats that arrive meanwhile, in one call (holds.py)."""
        key = (instance_id, _chat(group_id, sender))
        row = (await self._hold(key, sender, group_id, user_id or sender))[1:]
        n = len(REG_COLUMNS.split(","))  # where the columns after the registration's begin
        registered = row[0] is not None
        return InboundContext(
            registration=registration_row(row) if registered else None,
            group=Group(instance_id=row[n + 3], group_id=row[n + 4], name=row[n + 5],
                        registered_at=row[n + 6]) if row[n + 3] is not None else None,
            last_auto_reply_at=row[n + 1], last_hint_at=row[n + 2],
            last_sender=(row[n + 7], row[n + 8]) if row[n + 7] is not None else None,
            keyword_at=row[n] if registered else None)

    async def release_chat(self, instance_id: int, chat: str) -> None:
        await self._let_go((instance_id, chat))

    async def record_notice(self, notice: ProviderNotice, now: float) -> None:
        await self._pool.execute(
            "INSERT INTO provider_notices (provider, kind, instance_id, event, detail, at,"
            " received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)", *notice_values(notice, now))

    async def our_message_ids(self, instance_id: int, provider_message_ids: Sequence[str]
                              ) -> dict[str, str]:
        ids = list(dict.fromkeys(provider_message_ids))[:50]
        if not ids:
            return {}
        rows = await self._pool.fetch(
            "SELECT provider_message_id, id FROM outbound"
            " WHERE provider_message_id = ANY($1::text[]) AND instance_id = $2",
            ids, instance_id)
        return {r[0]: r[1] for r in rows}

    async def commit_inbound(self, effects: Effects, now: float) -> bool:
        msg = effects.inbound
        key = (msg.instance_id, msg.chat)
        written = await self._write_held(key, effects, now)
        if written is None:  # no state was read first: hold the chat now
            return await self._tx(lambda conn: self._write_inbound(conn, effects, now),
                                  begin=f"BEGIN; {chat_lock(*key)}")
        return written

    def _fits(self, effects: Effects) -> bool:
        """A message whose write goes with others' (`_write_together`): a private
        one whose registration, if any, is its sender's, linking no user id,
        naming no group (those are rarer: each goes alone)."""
        msg, reg = effects.inbound, effects.registration
        return (msg.group is None and effects.group is None
                and not _links_user(effects) and (reg is None or reg.number == msg.sender))

    async def _write_alone(self, conn: Conn, key: Key, effects: Effects, now: float) -> bool:
        """Write one message on the connection holding its chat, the chat passed
        from its session lock to the write's transaction (wagate_chat_pass): one
        statement, autocommitted, or a transaction when a user id is linked."""
        if _links_user(effects):
            await conn.execute(f"BEGIN; SELECT wagate_chat_pass({LOCK_CHAT},"
                               f" {chat_key(*key)}, NULL)")
            return await self._finish(conn, lambda tx: self._write_inbound(tx, effects, now))
        return await self._write_inbound(conn, effects, now, chat_key(*key))

    async def _write_together(self, conn: Conn, ops: list[Op]) -> list[bool]:
        """Write several messages (each `_fits`) in one autocommitted statement,
        each chat passed from its session lock to it (wagate_chats_pass): what
        `_write_inbound` writes for each, as rows of arrays (a fixed text per
        shape, prepared once), each gated by its message being new."""
        effects = [op.effects for op in ops if op.effects is not None]
        msgs = [e.inbound for e in effects]
        regs = [e.registration for e in effects]
        st = Statement()

        def column(values: Sequence[Any], kind: str) -> str:
            return st.arg(list(values), f"{kind}[]")

        st.step("u", "SELECT * FROM unnest(" + ", ".join([
            column([m.provider for m in msgs], "text"),
            column([m.provider_message_id for m in msgs], "text"),
            column([m.instance_id for m in msgs], "integer"),
            column([m.sender for m in msgs], "text"),
            column([m.user_id for m in msgs], "text"),
            column([m.kind for m in msgs], "text"),
            column([m.text for m in msgs], "text"),
            column([op.now for op in ops], "float8"),
            column([inbound_time(m.timestamp, op.now) for m, op in zip(msgs, ops, strict=True)],
                   "float8"),
            column([r.number if r else None for r in regs], "text"),
            column([r.locale if r else None for r in regs], "text"),
            column([r.status if r else None for r in regs], "text"),
            column([r.keyword_subscriber if r else None for r in regs], "text"),
            column([op.now if r and r.status != "active" else None
                    for r, op in zip(regs, ops, strict=True)], "float8"),
            column([op.now if r and r.keyword_subscriber else None
                    for r, op in zip(regs, ops, strict=True)], "float8"),
        ]) + ") WITH ORDINALITY AS u (provider, message_id, inst, sender, user_id, kind, text,"
             " at, seen, number, locale, status, keyword, opted_out, keyword_at, ord)")
        st.step("fresh", (
            "INSERT INTO inbound (provider, provider_message_id, instance_id, sender, user_id,"
            " kind, text, received_at) SELECT provider, message_id, inst, sender, user_id,"
            " kind, text, at FROM u ORDER BY ord"
            " ON CONFLICT (provider, provider_message_id) DO NOTHING"
            " RETURNING provider, provider_message_id"))
        st.step("new", "SELECT u.ord FROM u JOIN fresh ON fresh.provider = u.provider"
                       " AND fresh.provider_message_id = u.message_id")
        new = "u.ord IN (SELECT ord FROM new)"
        # A registration is its sender's (`_fits`): the message's time goes on its row.
        st.step("reg", (
            f"INSERT INTO registrations ({REG_COLUMNS}, keyword_at) SELECT inst, number,"
            " locale, status, keyword, at, at, opted_out, user_id, seen, keyword_at FROM u"
            f" WHERE number IS NOT NULL AND {new} {_REGISTRATION_CONFLICT},"
            " last_inbound_at = GREATEST(excluded.last_inbound_at,"
            " COALESCE(registrations.last_inbound_at, 0)) RETURNING 1"))
        st.step("seen", (
            "UPDATE registrations r SET last_inbound_at = GREATEST(u.seen,"
            " COALESCE(r.last_inbound_at, 0)) FROM u WHERE u.number IS NULL"
            f" AND r.instance_id = u.inst AND r.number = u.sender AND {new} RETURNING 1"))
        marks = [(n, kind) for n, e in enumerate(effects, start=1)
                 for kind in dict.fromkeys(e.auto_reply_marks)]
        if marks:
            st.step("marks", (
                "INSERT INTO auto_replies (instance_id, number, kind, last_at)"
                " SELECT u.inst, u.sender, m.kind, u.at FROM unnest("
                f"{column([n for n, _ in marks], 'integer')},"
                f" {column([k for _, k in marks], 'text')}) AS m (ord, kind)"
                f" JOIN u ON u.ord = m.ord WHERE {new} ON CONFLICT (instance_id, number, kind)"
                " DO UPDATE SET last_at = excluded.last_at RETURNING 1"))

        files = [(n, e.media) for n, e in enumerate(effects, start=1) if e.media is not None]
        if files:  # each file's fetch queued at its message's time
            st.step("media", (
                "INSERT INTO inbound_media (id, provider, instance_id, kind, provider_media_id,"
                " source_url, mime_type, filename, status, next_attempt_at, created_at,"
                " expires_at) SELECT f.id, f.provider, f.inst, f.kind, f.media_id, f.url,"
                " f.mime, f.filename, 'pending', u.at, u.at, f.expires FROM unnest("
                + ", ".join([
                    column([n for n, _ in files], "integer"),
                    *(column([getattr(f, name) for _, f in files], "text") for name in (
                        "id", "provider", "kind", "provider_media_id", "source_url",
                        "mime_type", "filename")),
                    column([f.instance_id for _, f in files], "integer"),
                    column([f.expires_at for _, f in files], "float8")])
                + ") AS f (ord, id, provider, kind, media_id, url, mime, filename, inst,"
                f" expires) JOIN u ON u.ord = f.ord WHERE {new} ON CONFLICT (id) DO NOTHING"
                " RETURNING 1"))

        def gate(owners: list[int]) -> str:  # a draft's (d) message is new
            return f"({column(owners, 'integer')})[d.ord] IN (SELECT ord FROM new)"

        replies = [(n, op.now, draft) for n, (op, e) in enumerate(zip(ops, effects, strict=True),
                                                                  start=1)
                   for draft in e.replies]
        if replies:
            self._add_outbound(st, [d for _, _, d in replies], [at for _, at, _ in replies],
                               gate([n for n, _, _ in replies]))
        deliveries = [(n, draft) for n, e in enumerate(effects, start=1)
                      for draft in e.deliveries]
        pending = "0"
        if deliveries:  # at the batch's last time: each chat's stay in order
            pending = self._add_deliveries(st, [d for _, d in deliveries],
                                           max(op.now for op in ops),
                                           gate([n for n, _ in deliveries]))
        filled: list[Queue] = [queue for queue, work in (
            ("media", files), ("outbound", replies), ("deliveries", deliveries)) if work]
        notifies, unsent = self._notifies(st, filled, "EXISTS (SELECT 1 FROM new)")
        # The chats are passed once every step has run (the subquery, fenced by
        # OFFSET 0, reads them all, and its columns are read first): a step
        # that fails fails before any session lock is let go, and each message
        # can go again alone.
        steps = " + ".join(f"(SELECT count(*) FROM {name})" for name in (
            "reg", "seen", *(["marks"] if marks else []), *(["out"] if replies else []),
            *(["media"] if files else [])))
        written, queued, *_ = await conn.fetchrow(st.sql(
            f"SELECT written, queued, steps, wagate_chats_pass({LOCK_CHAT},"
            f" {column([chat_key(*op.key) for op in ops], 'integer')}), {notifies}"
            f" FROM (SELECT ARRAY(SELECT ord FROM new) AS written, {pending} AS queued,"
            f" {steps} AS steps OFFSET 0) AS done"), *st.args)
        if written:
            if not queued:
                filled = [queue for queue in filled if queue != "deliveries"]
            self._committed(filled, unsent)
        return [n in written for n in range(1, len(ops) + 1)]

    async def _write_inbound(self, conn: Conn, effects: Effects, now: float,
                             passing: int | None = None) -> bool:
        """Write what a message caused in one statement (a few more when a user id
        is linked to its number), in the transaction open on `conn`, or, given
        the chat's lock key `passing`, autocommitted with the chat passed to it
        and its NOTIFYs in it; False for a redelivery, whose first delivery's
        effects stand."""
        msg = effects.inbound
        private = msg.group is None
        st = Statement()
        inbound = (msg.provider, msg.provider_message_id, msg.instance_id, msg.sender,
                   msg.user_id, msg.group.id if msg.group else None, msg.kind, msg.text, now)
        if _links_user(effects):
            # Linking reads what it changes: it goes on its own, after the message.
            if await conn.fetchval(_INSERT_INBOUND.format(
                    ", ".join(f"${i}" for i in range(1, 10))), *inbound) is None:
                return False
            await self._link_user(conn, msg.instance_id, msg.sender, msg.user_id)
            fresh = gate = "TRUE"
        else:  # every write goes only if the message is new
            st.step("fresh", _INSERT_INBOUND.format(", ".join(map(st.arg, inbound))))
            fresh = gate = "EXISTS (SELECT 1 FROM fresh)"
        reg = effects.registration
        seen = st.arg(inbound_time(msg.timestamp, now), "float8") if private else None
        # The user's own message opens their window (never ours): on their
        # registration's row, written once (no two steps may touch one row).
        seen_by_upsert = seen is not None and reg is not None and reg.number == msg.sender
        if reg is not None:
            at = st.once("now", now, "float8")
            values = ", ".join([
                st.arg(reg.instance_id, "integer"), st.arg(reg.number, "text"),
                st.arg(reg.locale, "text"), st.arg(reg.status, "text"),
                st.arg(reg.keyword_subscriber, "text"), at, at,
                "NULL::float8" if reg.status == "active" else at,
                st.arg(msg.user_id if private else None, "text"),
                seen if seen_by_upsert else "NULL::float8",
                at if reg.keyword_subscriber else "NULL::float8"])
            st.step("reg", (
                f"INSERT INTO registrations ({REG_COLUMNS}, keyword_at)"
                f" SELECT {values} WHERE {gate} {_REGISTRATION_CONFLICT}"
                + (", last_inbound_at = GREATEST(excluded.last_inbound_at,"
                   " COALESCE(registrations.last_inbound_at, 0))" if seen_by_upsert else "")))
        if seen is not None and not seen_by_upsert:
            st.step("seen", (
                f"UPDATE registrations SET last_inbound_at = GREATEST({seen},"
                f" COALESCE(last_inbound_at, 0)) WHERE instance_id = {st.arg(msg.instance_id)}"
                f" AND number = {st.arg(msg.sender)} AND {gate}"))
        if effects.group is not None:
            g = effects.group
            at = st.once("now", now, "float8")
            st.step("grp", (
                "INSERT INTO groups (instance_id, group_id, name, name_key, registered_at)"
                f" SELECT {st.arg(g.instance_id, 'integer')}, {st.arg(g.group_id, 'text')},"
                f" {st.arg(g.name, 'text')}, {st.arg(group_name_key(g.name), 'text')}, {at}"
                f" WHERE {gate} ON CONFLICT (instance_id, group_id) DO UPDATE SET"
                " name = excluded.name, name_key = excluded.name_key"))
        if effects.auto_reply_marks:
            kinds = list(dict.fromkeys(effects.auto_reply_marks))  # one row, one write
            at = st.once("now", now, "float8")
            st.step("marks", (
                "INSERT INTO auto_replies (instance_id, number, kind, last_at)"
                f" SELECT {st.arg(msg.instance_id, 'integer')}, {st.arg(msg.chat, 'text')},"
                f" kind, {at} FROM unnest({st.arg(kinds, 'text[]')}) AS kind WHERE {gate}"
                " ON CONFLICT (instance_id, number, kind)"
                " DO UPDATE SET last_at = excluded.last_at"))
        if effects.replies:
            self._add_outbound(st, effects.replies, now, gate)
        pending = (self._add_deliveries(st, effects.deliveries, now, gate)
                   if effects.deliveries else "0")
        if effects.media is not None:
            add_media(st, effects.media, now, gate)
        main = f"SELECT {fresh}, {pending}"
        filled: list[Queue] = [queue for queue, work in (
            ("media", effects.media), ("outbound", effects.replies),
            ("deliveries", effects.deliveries)) if work]
        unsent: list[str] = []
        if passing is not None:
            # One NOTIFY for deliveries that all went to disabled endpoints costs
            # the others a poll. (wagate_chat_pass's own carry no sender: none go.)
            notifies, unsent = self._notifies(st, filled, fresh)
            main += (f", wagate_chat_pass({LOCK_CHAT}, {st.arg(passing, 'integer')}, NULL),"
                     f" {notifies}")
        written, queued, *_ = await conn.fetchrow(st.sql(main), *st.args)
        if not written:
            return False
        if not queued:  # every delivery went to a disabled endpoint, failed
            filled = [queue for queue in filled if queue != "deliveries"]
        if passing is not None:  # committed, autocommitted
            self._committed(filled, unsent)
            return True
        for queue in filled:
            self._notify(conn, queue)
        return True

    async def apply_status(self, update: StatusUpdate, now: float,
                           route: Callable[[OutboundRow], list[DeliveryDraft]] | None = None
                           ) -> OutboundRow | None:
        async def unit(conn: Conn) -> OutboundRow | None:
            await self._lock_status(conn, update.provider_message_id)
            row = await conn.fetchrow("SELECT id, status FROM outbound"
                                      " WHERE provider_message_id = $1",
                                      update.provider_message_id)
            unknown = unknown_word(update)
            if unknown is not None:  # a word added later: the history tells it, no more
                if row is not None:
                    await self._record(conn, row[0], status_time(update, now), unknown)
                return None
            if row is None:
                # Maybe ours, before the send's answer recorded its id: park it
                # (the best status wins); parked ones of others age out in a day.
                early = await conn.fetchval("SELECT status FROM early_statuses"
                                            " WHERE provider_message_id = $1",
                                            update.provider_message_id)
                if early is None or status_advances(early, update.status):
                    await conn.execute(
                        "INSERT INTO early_statuses (provider_message_id, status, error_code,"
                        " error_title, received_at) VALUES ($1, $2, $3, $4, $5)"
                        " ON CONFLICT (provider_message_id) DO UPDATE SET"
                        " status = excluded.status, error_code = excluded.error_code,"
                        " error_title = excluded.error_title,"
                        " received_at = excluded.received_at",
                        update.provider_message_id, update.status, update.error_code,
                        update.error_title, now)
                await conn.execute("DELETE FROM early_statuses WHERE received_at < $1",
                                   now - EARLY_STATUS_AGE)
                return None
            # Media kept for a provider to fetch (mark_sent keep_media) are fetched
            # by the time it reports any status.
            await conn.execute("UPDATE outbound SET media = NULL WHERE id = $1"
                               " AND media IS NOT NULL", row[0])
            if update.pricing_category is not None:  # told with sent and delivered alike
                await conn.execute("UPDATE outbound SET pricing_category = $1, billable = $2"
                                   " WHERE id = $3", update.pricing_category,
                                   None if update.billable is None else int(update.billable),
                                   row[0])
            # Statuses arrive out of order; never move backwards (read -> delivered).
            if not status_advances(row[1], update.status):
                return None
            await conn.execute(
                "UPDATE outbound SET status = $1, error_code = COALESCE($2, error_code),"
                " error_title = COALESCE($3, error_title), updated_at = $4 WHERE id = $5",
                update.status, update.error_code, update.error_title, now, row[0])
            await self._record(conn, row[0], status_time(update, now), update.status,
                               update.error_code, update.error_title)
            got = await self._outbound_of(conn, row[0])
            if route is not None:  # webhook deliveries commit with the status they tell of
                await self._insert_deliveries(conn, route(got), now)
            return got
        return await self._tx(unit)

    async def opt_out(self, number: str, instance_ids: Sequence[int], default_locale: str,
                      now: float,
                      route: Callable[[InboundContext], list[DeliveryDraft]] | None = None
                      ) -> list[tuple[Registration, str | None]]:
        """Opt a number out by hand on each instance (see SqliteStore.opt_out),
        holding each of its chats as a message of the chat would."""
        # The chats in their locks' order, as a batch of reads takes them.
        keys = sorted({(instance_id, number) for instance_id in instance_ids},
                      key=lambda key: chat_key(*key))
        for key in keys:  # a message of these chats that never committed
            await self._let_go(key)

        async def unit(conn: Conn) -> list[tuple[Registration, str | None]]:
            out = []
            for instance_id in instance_ids:
                row = await conn.fetchrow(REG_OF_USER, instance_id, number)
                before = registration_row(row) if row else None
                key = before.number if before is not None else number
                if before is not None and before.active and route is not None:
                    state = InboundContext(
                        registration=before, group=None, last_auto_reply_at=None,
                        last_hint_at=None, keyword_at=row[len(REG_COLUMNS.split(","))],
                        last_sender=await self._last_sender(conn, instance_id, key, None))
                    await self._insert_deliveries(conn, route(state), now)
                if before is None or before.active:
                    await conn.execute(_OPT_OUT, *_OPT_OUT_ARGS(
                        instance_id=instance_id, number=key, locale=default_locale, now=now))
                after = await conn.fetchrow(f"SELECT {REG_COLUMNS} FROM registrations"
                                            " WHERE instance_id = $1 AND number = $2",
                                            instance_id, key)
                out.append((registration_row(after), before.status if before else None))
            return out
        return await self._tx(unit, begin="; ".join(["BEGIN", *(chat_lock(*k) for k in keys)]))
