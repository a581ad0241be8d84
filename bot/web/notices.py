"""Provider notices for the admin: `GET /admin/notices` (newest first), and
what the latest of them say about the accounts (read by /readyz and the
dashboard) — see bot/notices.py for what counts as a restriction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from aiohttp import web

from bot.notices import account_problems
from bot.store.models import NoticeRow
from bot.store.protocol import Queries
from bot.web.auth import ADMIN_ERRORS, require_admin
from bot.web.keys import store_key
from bot.web.operations import LIMIT, ApiRoutes, Time, doc, json_response, query
from bot.web.query import QUERY_ERRORS, query_limit
from bot.web.row_json import iso_time

routes = ApiRoutes()


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    provider: str
    kind: Annotated[str, doc("Meta's webhook field (account_update, "
                             "message_template_status_update, ...), or session.status")]
    instance_id: Annotated[int | None, doc("null: about the whole account")]
    event: Annotated[str | None, doc("what happened, in the provider's word")]
    detail: Annotated[dict[str, Any], doc("the provider's own JSON, as it was sent")]
    at: Time
    received_at: Time

    @classmethod
    def of(cls, row: NoticeRow) -> Notice:
        try:
            detail = json.loads(row.detail)
        except ValueError:
            detail = {"raw": row.detail}
        return cls(provider=row.provider, kind=row.kind, instance_id=row.instance_id,
                   event=row.event, detail=detail if isinstance(detail, dict) else
                   {"value": detail}, at=iso_time(row.at), received_at=iso_time(row.received_at))


@dataclass(frozen=True, slots=True, kw_only=True)
class Notices:
    notices: list[Notice]
    account_problems: Annotated[list[str], doc("what the latest notices say is wrong "
                                                "with an account (also in /readyz)")]


@routes.operation(
    "get", "/admin/notices", id="list_notices",
    summary="What the providers told about the accounts, newest first", ok=Notices,
    ok_description="Notices",
    parameters=(query("provider", "Only this provider", {"type": "string"}),
                query("kind", "Only this kind", {"type": "string"}), LIMIT),
    tag="admin", security="admin", errors=ADMIN_ERRORS | QUERY_ERRORS)
async def notices(request: web.Request) -> web.Response:
    require_admin(request)
    store = request.app[store_key]
    rows = await store.list_notices(provider=request.query.get("provider") or None,
                                    kind=request.query.get("kind") or None,
                                    limit=query_limit(request))
    return json_response(Notices(notices=[Notice.of(r) for r in rows],
                                 account_problems=await problems_of(store)))


async def problems_of(store: Queries) -> list[str]:
    """What the latest account notices say is wrong (a restriction, a ban)."""
    return account_problems(await store.list_notices(kind="account_update", limit=50))
