"""The admin API (Bearer token): registrations, message log, reload."""

from __future__ import annotations

from aiohttp import web

from bot.numbers import to_e164
from bot.runtime import ReloadError, reload_from_disk
from bot.web.auth import require_admin
from bot.web.errors import fail
from bot.web.keys import holder_key, store_key
from bot.web.sandbox import _query_int
from bot.web.views import message_log_json, registration_json

routes = web.RouteTableDef()

_STATUSES = ("active", "opted_out")


def _limit(request: web.Request, default: int = 100) -> int:
    return min(max(_query_int(request, "limit") or default, 1), 1000)


@routes.get("/admin/registrations")
async def registrations(request: web.Request) -> web.Response:
    require_admin(request)
    status = request.query.get("status") or None
    if status is not None and status not in _STATUSES:
        fail(400, "invalid_status", "status must be active or opted_out")
    rows = await request.app[store_key].list_registrations(
        instance_id=_query_int(request, "instance"), status=status, limit=_limit(request))
    return web.json_response({"registrations": [registration_json(r) for r in rows]})


@routes.get("/admin/registrations/{number}")
async def registration(request: web.Request) -> web.Response:
    require_admin(request)
    number = to_e164(request.match_info["number"])
    if number is None:
        fail(400, "invalid_number", "not a phone number with country code")
    store = request.app[store_key]
    rows = await store.registrations_of(number)
    if not rows and not await store.has_written(number):
        fail(404, "unknown_number", f"{number} has never written to this gateway")
    return web.json_response({"registrations": [registration_json(r) for r in rows]})


@routes.get("/admin/messages")
async def messages(request: web.Request) -> web.Response:
    require_admin(request)
    direction = request.query.get("direction") or None
    if direction not in (None, "in", "out"):
        fail(400, "invalid_direction", "direction must be in or out")
    number = None
    if request.query.get("number"):
        number = to_e164(request.query["number"])
        if number is None:
            fail(400, "invalid_number", "not a phone number with country code")
    rows = await request.app[store_key].list_messages(
        direction=direction, instance_id=_query_int(request, "instance"), number=number,
        limit=_limit(request))
    return web.json_response({"messages": [message_log_json(m) for m in rows]})


@routes.post("/admin/reload")
async def reload(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        reload_from_disk(request.app[holder_key])
    except ReloadError as exc:
        fail(422, "reload_refused", f"config refused, the old one stays in force: {exc}")
    return web.json_response({"status": "reloaded",
                              "generation": request.app[holder_key].generation})
