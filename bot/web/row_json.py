"""The JSON shapes of rows, as frozen dataclasses: the admin, sandbox, account
and send APIs answer with them, and /openapi.json generates their schemas
from the same types (bot/web/operations.py)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from bot.store.models import CostRow, MessageLogRow, OutboundRow
from bot.store.models import Registration as RegistrationRow
from bot.store.rules import shown_status
from bot.web.operations import MaybeTime, Time, doc
from bot.window import open_until

Kind = Literal["text", "image", "document", "url"]
MessageStatusName = Literal["queued", "sent", "delivered", "read", "played", "failed"]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def iso_time(ts: float) -> str:
    return iso(ts) or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    instance: int
    number: str
    locale: str
    status: Literal["active", "opted_out"]
    keyword_subscriber: str | None
    registered_at: Time
    updated_at: Time
    opted_out_at: Annotated[MaybeTime, doc(
        "When it was opted out (the first STOP or the admin's opt-out); null while active")]
    user_id: Annotated[str | None, doc(
        "The provider's business-scoped user id, when known; `number` is that id for a user "
        "known by nothing else")]
    window_open_until: Annotated[MaybeTime, doc(
        "When the 24-hour customer-service window closes (24 hours after the user's last "
        "message)")]

    @classmethod
    def of(cls, r: RegistrationRow) -> Registration:
        return cls(instance=r.instance_id, number=r.number, locale=r.locale,
                   status=r.status,  # type: ignore[arg-type]
                   keyword_subscriber=r.keyword_subscriber,
                   registered_at=iso_time(r.registered_at), updated_at=iso_time(r.updated_at),
                   opted_out_at=iso(r.opted_out_at), user_id=r.user_id,
                   window_open_until=iso(open_until(r.last_inbound_at)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderError:
    code: int | None
    title: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupName:
    id: str
    name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pricing:
    category: str
    billable: bool | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxMessage:
    id: str
    instance: int
    to: str | None
    group: GroupName | None
    type: Kind
    text: str | None
    caption: str | None
    filename: str | None
    status: str
    error: Annotated[ProviderError | None, doc("Only when failed")]
    template: Annotated[dict[str, Any] | None, doc(
        "The template it goes out as: name, language, category, parameters, header")]
    pricing: Annotated[Pricing | None, doc(
        "What the provider charged it as, once a status told")]
    subscriber: str | None
    created_at: Time

    @classmethod
    def of(cls, m: OutboundRow) -> OutboxMessage:
        return cls(id=m.id, instance=m.instance_id, to=m.to,
                   group=GroupName(id=m.group_id, name=m.group_name) if m.group_id else None,
                   type=m.type,  # type: ignore[arg-type]
                   text=m.text, caption=m.caption, filename=m.filename, status=m.status,
                   error=ProviderError(code=m.error_code, title=m.error_title)
                   if m.status == "failed" else None,
                   template=json.loads(m.template) if m.template else None,
                   pricing=Pricing(category=m.pricing_category, billable=m.billable)
                   if m.pricing_category else None,
                   subscriber=m.subscriber_id, created_at=iso_time(m.created_at))


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedMessage:
    direction: Literal["in", "out"]
    id: str
    instance: int
    number: str | None
    group_id: str | None
    type: str
    text: str | None
    status: str | None
    at: Time

    @classmethod
    def of(cls, m: MessageLogRow) -> LoggedMessage:
        return cls(direction=m.direction,  # type: ignore[arg-type]
                   id=m.id, instance=m.instance_id, number=m.number, group_id=m.group_id,
                   type=m.type, text=m.text, status=m.status, at=iso_time(m.at))


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    subscriber: Annotated[str | None, doc("null: the gateway's own replies")]
    category: str
    billable: bool | None
    messages: int

    @classmethod
    def of(cls, c: CostRow) -> Cost:
        return cls(subscriber=c.subscriber_id, category=c.category, billable=c.billable,
                   messages=c.messages)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A sent message as its sender sees it."""

    id: str
    status: MessageStatusName
    instance: int
    type: Kind
    to: str | None
    group: str | None
    reason: str | None
    error: ProviderError | None
    created_at: Time
    updated_at: Time

    @classmethod
    def of(cls, row: OutboundRow) -> Message:
        failed = row.status == "failed"
        status = shown_status(row.status)
        return cls(id=row.id, status=status,  # type: ignore[arg-type]
                   instance=row.instance_id, type=row.type,  # type: ignore[arg-type]
                   to=row.to, group=row.group_name if row.group_id else None,
                   reason=row.error_title if failed else None,
                   error=ProviderError(code=row.error_code, title=row.error_title)
                   if failed else None,
                   created_at=iso_time(row.created_at), updated_at=iso_time(row.updated_at))


@dataclass(frozen=True, slots=True, kw_only=True)
class Registrations:
    registrations: list[Registration]


@dataclass(frozen=True, slots=True, kw_only=True)
class Messages:
    messages: list[Message]
