"""JSON shapes of rows, shared by the admin, sandbox and send APIs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bot.store.models import CostRow, MessageLogRow, OutboundRow, Registration
from bot.window import open_until


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def registration_json(r: Registration) -> dict[str, Any]:
    return {"instance": r.instance_id, "number": r.number, "locale": r.locale,
            "status": r.status, "keyword_subscriber": r.keyword_subscriber,
            "registered_at": iso(r.registered_at), "updated_at": iso(r.updated_at),
            "opted_out_at": iso(r.opted_out_at),
            # The user's business-scoped id when the provider gave one; `number`
            # is that id for a user known by nothing else.
            "user_id": r.user_id,
            # When the 24-hour customer-service window closes (windowed providers).
            "window_open_until": iso(open_until(r.last_inbound_at))}


def outbox_json(m: OutboundRow) -> dict[str, Any]:
    return {"id": m.id, "instance": m.instance_id, "to": m.to,
            "group": {"id": m.group_id, "name": m.group_name} if m.group_id else None,
            "type": m.type, "text": m.text, "caption": m.caption, "filename": m.filename,
            "status": m.status, "error": {"code": m.error_code, "title": m.error_title}
            if m.status == "failed" else None,
            "template": json.loads(m.template) if m.template else None,
            "pricing": {"category": m.pricing_category, "billable": m.billable}
            if m.pricing_category else None,
            "subscriber": m.subscriber_id, "created_at": iso(m.created_at)}


def message_log_json(m: MessageLogRow) -> dict[str, Any]:
    return {"direction": m.direction, "id": m.id, "instance": m.instance_id, "number": m.number,
            "group_id": m.group_id, "type": m.type, "text": m.text, "status": m.status,
            "at": iso(m.at)}


def cost_json(c: CostRow) -> dict[str, Any]:
    return {"subscriber": c.subscriber_id, "category": c.category, "billable": c.billable,
            "messages": c.messages}
