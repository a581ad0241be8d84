"""The admin API (Bearer token): registrations, message log, reload."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.effects import DeliveryDraft
from bot.numbers import to_e164
from bot.runtime import ReloadError
from bot.store.models import InboundContext
from bot.userids import is_user_id
from bot.web.auth import require_admin
from bot.web.errors import fail, parse_json_object, read_body
from bot.web.keys import (
    holder_key,
    metrics_key,
    pipeline_key,
    reloader_key,
    snapshot_of,
    store_key,
    webhook_worker_key,
)
from bot.web.query import query_choice, query_int, query_limit
from bot.web.views import cost_json, iso, message_log_json, registration_json
from bot.webhooks.routing import route_admin_opt_out

log = logging.getLogger("wagate.admin")

routes = web.RouteTableDef()

_STATUSES = ("active", "opted_out")


def _user(raw: str) -> str:
    """A user as the admin names them: a phone number, or a provider's user id."""
    if is_user_id(raw):
        return raw
    number = to_e164(raw)
    if number is None:
        fail(400, "invalid_number", "not a phone number with country code, nor a user id")
    return number


@routes.get("/admin/costs")
async def costs(request: web.Request) -> web.Response:
    """Messages by subscriber and the category the provider charged them as
    (Meta's pricing: utility, marketing, authentication, service ...)."""
    require_admin(request)
    rows = await request.app[store_key].costs()
    return web.json_response({"costs": [cost_json(c) for c in rows]})


@routes.get("/admin/registrations")
async def registrations(request: web.Request) -> web.Response:
    require_admin(request)
    status = query_choice(request, "status", _STATUSES)
    rows = await request.app[store_key].list_registrations(
        instance_id=query_int(request, "instance"), status=status, limit=query_limit(request))
    return web.json_response({"registrations": [registration_json(r) for r in rows]})


@routes.get("/admin/registrations/{number}")
async def registration(request: web.Request) -> web.Response:
    require_admin(request)
    number = _user(request.match_info["number"])
    store = request.app[store_key]
    rows = await store.registrations_of(number)
    if not rows and not await store.has_written(number):
        fail(404, "unknown_number", f"{number} has never written to this gateway")
    return web.json_response({"registrations": [registration_json(r) for r in rows]})


@routes.get("/admin/messages")
async def messages(request: web.Request) -> web.Response:
    require_admin(request)
    direction = query_choice(request, "direction", ("in", "out"))
    number = None
    if request.query.get("number"):
        number = to_e164(request.query["number"])
        if number is None:
            fail(400, "invalid_number", "not a phone number with country code")
    rows = await request.app[store_key].list_messages(
        direction=direction, instance_id=query_int(request, "instance"), number=number,
        limit=query_limit(request))
    return web.json_response({"messages": [message_log_json(m) for m in rows]})


@routes.post("/admin/reload")
async def reload(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        await request.app[reloader_key].reload()
    except ReloadError as exc:
        fail(422, "reload_refused", f"config refused, the old one stays in force: {exc}")
    return web.json_response({"status": "reloaded",
                              "generation": request.app[holder_key].generation})


# ---- operations


@routes.get("/admin/config")
async def config_summary(request: web.Request) -> web.Response:
    """What is in force: ids and names only, never a secret."""
    require_admin(request)
    holder = request.app[holder_key]
    snap = holder.current
    c = snap.config
    return web.json_response({
        "generation": holder.generation, "loaded_at": iso(holder.loaded_at), "path": c.path,
        "instances": [{"id": i.id, "number": i.number, "provider": i.provider,
                       "owner": i.owner} for i in c.instances.values()],
        "subscribers": [{"id": s.id, "plan": s.plan, "instances": list(s.instances),
                         "webhooks": len(s.webhooks)} for s in c.subscribers.values()],
        "plans": sorted(c.plans), "locales": sorted(snap.locales.locales),
        "default_locale": c.defaults.locale})


@routes.post("/admin/registrations/{number}/opt-out")
async def opt_out(request: web.Request) -> web.Response:
    """Opt a number out by hand: on one instance (`instance` in the query or the
    JSON body), else on every configured instance. Sends are refused from then on;
    no message goes to the user; the user comes back by saying Hi. Each active
    registration ended raises `user.unregistered` (`source: admin`), routed as a
    STOP from the user would be."""
    require_admin(request)
    number = _user(request.match_info["number"])
    instance = query_int(request, "instance")
    raw = await read_body(request, 4096)
    if instance is None and raw.strip():
        value = parse_json_object(raw).get("instance")
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            fail(400, "invalid_instance", "instance must be an integer")
        instance = value
    config = snapshot_of(request).config
    if instance is not None and instance not in config.instances:
        fail(404, "unknown_instance", f"instance {instance} is not configured")
    ids = [instance] if instance is not None else sorted(config.instances)
    now = time.time()
    routed = False

    def route(state: InboundContext) -> list[DeliveryDraft]:
        nonlocal routed
        drafts = route_admin_opt_out(config, state, now)
        routed = routed or bool(drafts)
        return drafts

    # Held like a message from this number: a STOP being handled meanwhile
    # commits first or sees the opt-out, so the user is not unregistered twice.
    async with request.app[pipeline_key].chats([(i, number) for i in ids]):
        results = await request.app[store_key].opt_out(number, ids, config.defaults.locale,
                                                       now, route)
    if routed:  # committed: the deliverer need not wait for its next poll
        request.app[webhook_worker_key].notify()
    changed = [reg for reg, before in results if before != "opted_out"]
    metrics = request.app[metrics_key]
    for reg, before in results:
        if before == "active":
            metrics.registrations.labels(reg.locale, "opted_out").inc()
    log.info("admin opted %s out on instance(s) %s (%d changed)", number,
             ", ".join(str(i) for i in ids), len(changed))
    return web.json_response({"changed": len(changed),
                              "registrations": [registration_json(r) for r, _ in results]})
