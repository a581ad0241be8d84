"""The read side both backends share, written once: named queries from
`sql/queries.sql` run through a thin connector per backend (SQLite's runs them
as units of work on its connection's thread, PostgreSQL's on its pool), and
`SharedQueries`, the `Queries` port (with the few reads the other ports share)
over that connector. What differs between the backends (the write and claim
paths) stays in bot/store/sqlite/ and bot/store/postgres/."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from bot.store.models import (
    AttemptRow,
    DeliveryRow,
    EndpointRow,
    Group,
    MessageLogRow,
    OutboundRow,
    Registration,
    SendUsage,
    StatusEvent,
)
from bot.store.rows import (
    DELIVERY_COLUMNS,
    OUTBOUND_COLUMNS,
    OUTBOUND_FROM,
    REG_COLUMNS,
    delivery_row,
    like_escaped,
    outbound_row,
    registration_row,
)
from bot.store.rules import (
    QUEUED_STATUSES,
    QuotaPeriod,
    current_usage,
    group_name_key,
    sql_list,
)

# What a write wakes once it commits: a queue's workers, or every process's
# managed state (bot/store/managed.py).
Wakes = Literal["outbound", "deliveries", "managed"]

# `-- name --` opens a block; comment lines right after it are its doc.
_BLOCK = re.compile(r"^-- ([a-z0-9_]+) --\n(?:--.*\n)*", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """The named blocks of a query file: name -> statement (the header before
    the first block is the file's own doc)."""
    parts = _BLOCK.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


QUERIES = {
    name: sql.replace("{outbound_columns}", OUTBOUND_COLUMNS)
             .replace("{outbound_from}", OUTBOUND_FROM)
             .replace("{registration_columns}", REG_COLUMNS)
             .replace("{delivery_columns}", DELIVERY_COLUMNS)
    for name, sql in parse_queries(
        (Path(__file__).parent / "sql" / "queries.sql").read_text(encoding="utf-8")).items()}

# A `:name` parameter; string literals are matched first so that none is read
# inside one (`':'`), and `::type` casts never look like one.
_PARAM = re.compile(r"'(?:[^']|'')*'|(?<![:\w]):([a-z_][a-z0-9_]*)")


def numbered(sql: str) -> tuple[str, Callable[..., list[Any]]]:
    """`sql` with `:name` parameters as `$1, $2, ...` (PostgreSQL's style), and
    what turns the parameters by name into the arguments in that order (a name
    used twice is one parameter)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _PARAM.sub(number, sql)
    getter = operator.itemgetter(*names) if names else None

    def arguments(**params: Any) -> list[Any]:
        if getter is None:
            return []
        return [params[names[0]]] if len(names) == 1 else list(getter(params))

    return text, arguments


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a unit: its SQL (with `:name` parameters) and their values."""

    sql: str
    params: Mapping[str, Any]
    # True: the unit is undone (and raises `Unchanged`) when this statement
    # changes no row, e.g. an update of a subscriber deleted meanwhile.
    must_change: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    """What a statement gave: its rows, and how many rows it changed."""

    rows: list[Sequence[Any]]
    count: int


class Connector(Protocol):
    """How the shared queries reach a backend: steps run as one unit of work."""

    async def read(self, steps: Sequence[Step]) -> list[Result]:
        """Run `steps` in order on one snapshot."""
        ...

    async def write(self, steps: Sequence[Step], wakes: Wakes | None = None) -> list[Result]:
        """Run `steps` in one transaction; when any changed a row, wake `wakes`'s
        workers (in every process) once it commits. A step with `must_change`
        that changes nothing undoes the unit and raises `Unchanged`; a unique
        constraint broken raises `Conflict` (nothing written either way)."""
        ...


def filters(**values: Any) -> tuple[str, dict[str, Any]]:
    """`column = :column` for each value that is not None, ANDed (`1 = 1` when
    none), and the parameters; `o__id` stands for the column `o.id`."""
    used = {name: value for name, value in values.items() if value is not None}
    clause = " AND ".join(f"{name.replace('__', '.')} = :{name}" for name in used) or "1 = 1"
    return clause, used


def step(name: str, where: str = "", /, *, must_change: bool = False, **params: Any) -> Step:
    """The named query with its `{filters}` put in (positional: `name` may be a parameter)."""
    sql = QUERIES[name]
    return Step(sql.replace("{filters}", where) if where else sql, params, must_change)


class SharedQueries:
    """The `Queries` port, and the reads of the other ports that are the same
    SQL on both backends, over the backend's connector."""

    connector: Connector

    async def _rows(self, query: Step) -> list[Sequence[Any]]:
        return (await self.connector.read([query]))[0].rows

    async def _row(self, query: Step) -> Sequence[Any] | None:
        rows = await self._rows(query)
        return rows[0] if rows else None

    # ---- outbound

    async def get_outbound(self, message_id: str) -> OutboundRow | None:
        row = await self._row(step("get_outbound", id=message_id))
        return outbound_row(row) if row else None

    async def status_history(self, message_id: str) -> list[StatusEvent]:
        return [StatusEvent(at=r[0], status=r[1], error_code=r[2], error_title=r[3])
                for r in await self._rows(step("status_history", message_id=message_id))]

    async def list_outbox(self, *, instance_id: int | None, to: str | None,
                          limit: int) -> list[OutboundRow]:
        where, params = filters(o__instance_id=instance_id, o__to_number=to)
        rows = await self._rows(step("list_outbox", where, **params, limit=limit))
        return [outbound_row(r) for r in reversed(rows)]

    async def outbound_media(self, message_id: str) -> bytes | None:
        row = await self._row(step("outbound_media", id=message_id))
        return row[0] if row else None

    async def queue_depth(self) -> tuple[int, float | None]:
        row = await self._row(step("queue_depth"))
        assert row is not None  # an aggregate always has its row
        return row[0], row[1]

    async def search_outbound(self, *, subscriber_id: str | None, status: str | None,
                              error_code: int | None, instance_id: int | None,
                              limit: int) -> list[OutboundRow]:
        where, params = filters(o__subscriber_id=subscriber_id, o__error_code=error_code,
                                o__instance_id=instance_id)
        if status == "queued":
            where += f" AND o.status IN {sql_list(QUEUED_STATUSES)}"
        elif status is not None:
            where += " AND o.status = :status"
            params["status"] = status
        rows = await self._rows(step("search_outbound", where, **params, limit=limit))
        return [outbound_row(r) for r in rows]

    # ---- registrations, groups, the message log

    async def list_registrations(self, *, instance_id: int | None, status: str | None,
                                 limit: int) -> list[Registration]:
        where, params = filters(instance_id=instance_id, status=status)
        return [registration_row(r) for r in
                await self._rows(step("list_registrations", where, **params, limit=limit))]

    async def registrations_of(self, number: str) -> list[Registration]:
        """A user's registrations, by number or by user id."""
        return [registration_row(r)
                for r in await self._rows(step("registrations_of", number=number))]

    async def has_written(self, number: str) -> bool:
        row = await self._row(step("has_written", number=number))
        return row is not None and bool(row[0])

    async def find_group(self, instance_id: int, name: str) -> Group | None:
        row = await self._row(step("find_group", instance_id=instance_id,
                                   name_key=group_name_key(name)))
        return Group(instance_id=row[0], group_id=row[1], name=row[2],
                     registered_at=row[3]) if row else None

    async def search_registrations(self, *, number: str | None, locale: str | None,
                                   status: str | None, instance_id: int | None,
                                   limit: int) -> list[Registration]:
        where, params = filters(locale=locale, status=status, instance_id=instance_id)
        if number:  # any part of the number
            where += r" AND number LIKE :number ESCAPE '\'"
            params["number"] = "%" + like_escaped(number) + "%"
        return [registration_row(r) for r in
                await self._rows(step("search_registrations", where, **params, limit=limit))]

    async def list_messages(self, *, direction: str | None, instance_id: int | None,
                            number: str | None, limit: int) -> list[MessageLogRow]:
        parts: list[str] = []
        params: dict[str, Any] = {}
        if direction in (None, "in"):
            where, used = filters(instance_id=instance_id, sender=number)
            parts.append(step("messages_in", where).sql)
            params |= used
        if direction in (None, "out"):
            where, used = filters(instance_id=instance_id, to_number=number)
            parts.append(step("messages_out", where).sql)
            params |= used
        rows = await self._rows(step("message_log", " UNION ALL ".join(parts), **params,
                                     limit=limit))
        return [MessageLogRow(direction=r[0], id=r[1], instance_id=r[2], number=r[3],
                              group_id=r[4], type=r[5], text=r[6], status=r[7], at=r[8])
                for r in reversed(rows)]

    # ---- webhook deliveries

    async def list_deliveries(self, *, status: str | None, subscriber_id: str | None,
                              endpoint_key: str | None, limit: int) -> list[DeliveryRow]:
        where, params = filters(status=status, subscriber_id=subscriber_id,
                                endpoint_key=endpoint_key)
        return [delivery_row(r) for r in
                await self._rows(step("list_deliveries", where, **params, limit=limit))]

    async def get_delivery(self, delivery_id: str
                           ) -> tuple[DeliveryRow, list[AttemptRow]] | None:
        found, attempts = await self.connector.read([step("get_delivery", id=delivery_id),
                                                     step("delivery_attempts", id=delivery_id)])
        if not found.rows:
            return None
        return delivery_row(found.rows[0]), [
            AttemptRow(delivery_id=r[0], at=r[1], outcome=r[2], status_code=r[3],
                       latency_ms=r[4], response_body=r[5], error=r[6]) for r in attempts.rows]

    async def retry_delivery(self, delivery_id: str, now: float
                             ) -> tuple[str, DeliveryRow | None]:
        """Send one delivery now, with the same webhook-id: ("retried", row) for
        one that had failed or was delivered (a fresh retry schedule), ("pulled",
        row) for a pending one (due now, its schedule kept), ("in_flight", row)
        for one being sent right now, or ("not_found", None)."""
        # Pulled first: a retried one is pending afterwards and would match too.
        pulled, retried, found = await self.connector.write(
            [step("pull_delivery_forward", id=delivery_id, now=now),
             step("retry_delivery", id=delivery_id, now=now),
             step("get_delivery", id=delivery_id)], wakes="deliveries")
        if not found.rows:
            return "not_found", None
        state = "retried" if retried.count else "pulled" if pulled.count else "in_flight"
        return state, delivery_row(found.rows[0])

    async def replay_deliveries(self, since: float, now: float, *,
                                subscriber_id: str | None = None,
                                endpoint_key: str | None = None) -> tuple[int, int]:
        """Send now what was created at or after `since`: every failed delivery
        queued again, and every pending one waiting out a retry delay pulled
        forward. (How many failed, how many pending.)"""
        where, params = filters(subscriber_id=subscriber_id, endpoint_key=endpoint_key)
        pulled, replayed = await self.connector.write(
            [step("pull_deliveries_forward", where, **params, since=since, now=now),
             step("replay_deliveries", where, **params, since=since, now=now)],
            wakes="deliveries")
        return replayed.count, pulled.count

    async def delivery_queue_depth(self) -> int:
        row = await self._row(step("delivery_queue_depth"))
        assert row is not None  # an aggregate always has its row
        return int(row[0])

    async def list_endpoint_health(self) -> list[EndpointRow]:
        backlogs, endpoints = await self.connector.read([step("endpoint_backlogs"),
                                                         step("list_endpoints")])
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for sub, key, status, n in backlogs.rows:
            counts.setdefault((sub, key), {})[status] = n
        out = []
        for r in endpoints.rows:
            c = counts.get((r[0], r[1]), {})
            out.append(EndpointRow(subscriber_id=r[0], endpoint_key=r[1], url=r[2],
                                   failing_since=r[3], last_success_at=r[4],
                                   last_failure_at=r[5], disabled_at=r[6],
                                   disabled_reason=r[7], pending=c.get("pending", 0),
                                   failed=c.get("failed", 0)))
        return out

    async def enable_endpoint(self, endpoint_key: str, subscriber_id: str | None = None) -> int:
        """Enable an endpoint again (and forget its failing streak); how many were disabled."""
        where, params = filters(endpoint_key=endpoint_key, subscriber_id=subscriber_id)
        (enabled,) = await self.connector.write([step("enable_endpoint", where, **params)])
        return enabled.count

    # ---- send API

    async def send_usage(self, subscriber_id: str, period_seconds: float,
                         now: float) -> SendUsage:
        period, recipients = await self.connector.read([
            step("quota_period", subscriber_id=subscriber_id),
            step("recipient_count", subscriber_id=subscriber_id)])
        row = period.rows[0] if period.rows else None
        return current_usage(QuotaPeriod(start=row[0], count=row[1]) if row else None,
                             recipients=recipients.rows[0][0], period_seconds=period_seconds,
                             now=now)
