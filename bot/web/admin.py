"""The admin API (Bearer token): registrations, message log, reload."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.config import InstanceConfig
from bot.numbers import to_e164
from bot.profile import ProfileError, build_profile, decode_picture, lost_fields, profile_json
from bot.runtime import ReloadError
from bot.userids import is_user_id
from bot.web.auth import require_admin
from bot.web.errors import fail, parse_json_object, read_body
from bot.web.keys import profile_keeper_key, providers_key, reloader_key, store_key
from bot.web.query import query_choice, query_int, query_limit
from bot.web.request_services import registrations_service
from bot.web.row_json import cost_json, iso, message_log_json, registration_json
from bot.web.snapshot import holder_key, snapshot_of

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
    results = await registrations_service(request).opt_out(config, number, ids, time.time())
    changed = [reg for reg, before in results if before != "opted_out"]
    return web.json_response({"changed": len(changed),
                              "registrations": [registration_json(r) for r, _ in results]})


# ---- the gateway number's business profile

PROFILE_BODY_LIMIT = 8 * 1024 * 1024  # a 5 MB picture in base64, and the rest


def _instance(request: web.Request) -> InstanceConfig:
    raw = request.match_info["id"]
    # ASCII digits only, and few: int() refuses "²" and numbers of 4300 digits.
    valid = raw.isascii() and raw.isdigit() and len(raw) <= 9
    inst = snapshot_of(request).config.instances.get(int(raw)) if valid else None
    if inst is None:
        fail(404, "unknown_instance", f"instance {raw[:20]} is not configured")
    return inst


def _profile_view(request: web.Request, inst: InstanceConfig) -> dict[str, object]:
    keeper = request.app[profile_keeper_key]
    provider = request.app[providers_key][inst.provider]
    profile, source = keeper.desired(inst)
    state = keeper.states.get(inst.id)
    supported = sorted(provider.profile_fields) if provider.make_profiler else []
    return {"instance": inst.id, "provider": inst.provider, "supported_fields": supported,
            "source": source if profile else None, "profile": profile_json(profile),
            "not_supported": lost_fields(provider, profile) if profile else [],
            "state": state.json() if state else None}


@routes.get("/admin/instances/{id}/profile")
async def get_profile(request: web.Request) -> web.Response:
    """The profile in force for a number (the admin's, else the config's) and
    what happened when it was last applied."""
    require_admin(request)
    return web.json_response(_profile_view(request, _instance(request)))


@routes.put("/admin/instances/{id}/profile")
async def put_profile(request: web.Request) -> web.Response:
    """Set a number's profile (it replaces the config's until the process stops)
    and apply it now through the provider; a provider's refusal is answered
    200 with the failed state, as it is not the request's fault."""
    require_admin(request)
    inst = _instance(request)
    body = parse_json_object(await read_body(request, PROFILE_BODY_LIMIT))
    try:
        profile = build_profile({k: v for k, v in body.items() if k != "picture"},
                                decode_picture(body.get("picture")))
    except ProfileError as exc:
        fail(400, "invalid_profile", str(exc))
    keeper = request.app[profile_keeper_key]
    keeper.overrides[inst.id] = profile
    await keeper.apply(inst)
    log.info("admin set the profile of instance %s", inst.id)
    return web.json_response(_profile_view(request, inst))
