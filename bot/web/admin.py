"""The admin API (Bearer token): registrations, message log, reload."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from aiohttp import web

from bot.config import InstanceConfig
from bot.config.snapshot import ReloadError
from bot.numbers import to_e164
from bot.profile import (
    MAX_ABOUT,
    MAX_DESCRIPTION,
    MAX_EMAIL,
    MAX_WEBSITE,
    MAX_WEBSITES,
    ProfileError,
    build_profile,
    decode_picture,
    lost_fields,
    profile_json,
)
from bot.userids import is_user_id
from bot.web.auth import ADMIN_ERRORS, require_admin
from bot.web.catalog import Error
from bot.web.errors import JSON_ERRORS, READ_ERRORS, fail, parse_json_object, read_body
from bot.web.keys import profile_keeper_key, providers_key, reloader_key, store_key
from bot.web.operations import (
    LIMIT,
    ApiRoutes,
    Time,
    doc,
    json_response,
    object_schema,
    path_param,
    query,
)
from bot.web.query import QUERY_ERRORS, query_choice, query_int, query_limit
from bot.web.request_services import registrations_service
from bot.web.row_json import Cost, LoggedMessage, Registration, Registrations, iso_time
from bot.web.snapshot import holder_key, snapshot_of

log = logging.getLogger("wagate.admin")

routes = ApiRoutes()

_STATUSES = ("active", "opted_out")
_ADMIN = {"tag": "admin", "security": "admin"}
_INSTANCE_FILTER = query("instance", "Only this instance id", {"type": "integer"})
_NUMBER = path_param("number", "Phone number with country code ('+', spaces, dashes allowed), "
                     "or a provider's user id")
_INSTANCE_ID = path_param("id", "The instance (gateway number) id",
                          {"type": "integer", "minimum": 1})
_PROFILE_OK = "The profile in force and how its last application went"


@dataclass(frozen=True, slots=True, kw_only=True)
class Costs:
    costs: list[Cost]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedMessages:
    messages: list[LoggedMessage]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reloaded:
    status: Literal["reloaded"] = "reloaded"
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OptedOut:
    changed: Annotated[int, {"minimum": 0}]
    registrations: list[Registration]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceSummary:
    id: int
    number: str
    provider: str
    owner: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberSummary:
    id: str
    plan: str
    instances: list[int]
    webhooks: Annotated[int, doc("How many")]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigSummary:
    generation: int
    loaded_at: Time
    path: str | None
    instances: list[InstanceSummary]
    subscribers: list[SubscriberSummary]
    plans: list[str]
    locales: list[str]
    default_locale: str


def _user(raw: str) -> str:
    """A user as the admin names them: a phone number, or a provider's user id."""
    if is_user_id(raw):
        return raw
    number = to_e164(raw)
    if number is None:
        fail(Error.INVALID_NUMBER, "not a phone number with country code, nor a user id")
    return number


@routes.operation(
    "get", "/admin/costs", summary="Messages by subscriber and the provider's pricing category",
    ok=Costs, ok_description="Counts", **_ADMIN, errors=ADMIN_ERRORS)
async def costs(request: web.Request) -> web.Response:
    """Messages by subscriber and the category the provider charged them as
    (Meta's pricing: utility, marketing, authentication, service ...)."""
    require_admin(request)
    rows = await request.app[store_key].costs()
    return json_response(Costs(costs=[Cost.of(c) for c in rows]))


@routes.operation(
    "get", "/admin/registrations", id="list_registrations",
    summary="List registrations, in the order they registered", ok=Registrations,
    ok_description="Registrations", parameters=(_INSTANCE_FILTER, query(
        "status", "Only this status", {"enum": list(_STATUSES)}), LIMIT),
    **_ADMIN, errors=ADMIN_ERRORS | QUERY_ERRORS | {Error.INVALID_STATUS})
async def registrations(request: web.Request) -> web.Response:
    require_admin(request)
    status = query_choice(request, Error.INVALID_STATUS, _STATUSES)
    rows = await request.app[store_key].list_registrations(
        instance_id=query_int(request, "instance"), status=status, limit=query_limit(request))
    return json_response(Registrations(registrations=[Registration.of(r) for r in rows]))


@routes.operation(
    "get", "/admin/registrations/{number}", id="number_registrations",
    summary="A number's registrations on every instance", ok=Registrations,
    ok_description="Registrations", parameters=(_NUMBER,), **_ADMIN,
    errors=ADMIN_ERRORS | {Error.INVALID_NUMBER, Error.UNKNOWN_NUMBER})
async def registration(request: web.Request) -> web.Response:
    require_admin(request)
    number = _user(request.match_info["number"])
    store = request.app[store_key]
    rows = await store.registrations_of(number)
    if not rows and not await store.has_written(number):
        fail(Error.UNKNOWN_NUMBER, f"{number} has never written to this gateway")
    return json_response(Registrations(registrations=[Registration.of(r) for r in rows]))


@routes.operation(
    "get", "/admin/messages", id="list_messages",
    summary="The latest messages (inbound and outbound), oldest first", ok=LoggedMessages,
    ok_description="Messages",
    parameters=(query("direction", "Only this direction", {"enum": ["in", "out"]}),
                _INSTANCE_FILTER, query("number", "Only this phone number", {"type": "string"}),
                LIMIT),
    **_ADMIN, errors=ADMIN_ERRORS | QUERY_ERRORS | {Error.INVALID_DIRECTION,
                                                    Error.INVALID_NUMBER})
async def messages(request: web.Request) -> web.Response:
    require_admin(request)
    direction = query_choice(request, Error.INVALID_DIRECTION, ("in", "out"))
    number = None
    if request.query.get("number"):
        number = to_e164(request.query["number"])
        if number is None:
            fail(Error.INVALID_NUMBER, "not a phone number with country code")
    rows = await request.app[store_key].list_messages(
        direction=direction, instance_id=query_int(request, "instance"), number=number,
        limit=query_limit(request))
    return json_response(LoggedMessages(messages=[LoggedMessage.of(m) for m in rows]))


@routes.operation(
    "post", "/admin/reload", summary="Reload the config file (as SIGHUP does)", ok=Reloaded,
    ok_description="Reloaded", **_ADMIN, errors=ADMIN_ERRORS | {Error.RELOAD_REFUSED})
async def reload(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        await request.app[reloader_key].reload()
    except ReloadError as exc:
        fail(Error.RELOAD_REFUSED, f"config refused, the old one stays in force: {exc}")
    return json_response(Reloaded(generation=request.app[holder_key].generation))


# ---- operations


@routes.operation(
    "get", "/admin/config", summary="The config in force: ids and names, never a secret",
    ok=ConfigSummary, ok_description="Summary", **_ADMIN, errors=ADMIN_ERRORS)
async def config_summary(request: web.Request) -> web.Response:
    """What is in force: ids and names only, never a secret."""
    require_admin(request)
    holder = request.app[holder_key]
    snap = holder.current
    c = snap.config
    return json_response(ConfigSummary(
        generation=holder.generation, loaded_at=iso_time(holder.loaded_at), path=c.path,
        instances=[InstanceSummary(id=i.id, number=i.number, provider=i.provider,
                                   owner=i.owner) for i in c.instances.values()],
        subscribers=[SubscriberSummary(id=s.id, plan=s.plan, instances=list(s.instances),
                                       webhooks=len(s.webhooks))
                     for s in c.subscribers.values()],
        plans=sorted(c.plans), locales=sorted(snap.locales.locales),
        default_locale=c.defaults.locale))


@routes.operation(
    "post", "/admin/registrations/{number}/opt-out", summary="Opt a number out by hand",
    ok=OptedOut, ok_description="The registrations it touched; `changed` counts those not "
                                "opted out before",
    description="On one instance (`instance` in the query or the JSON body), else on every "
                "configured instance. Sends are refused from then on; no message goes to the "
                "user, who comes back by saying Hi. Each active registration ended raises "
                "`user.unregistered` (`source: admin`).",
    parameters=(_NUMBER, query("instance", "Only this instance id (wins over the body)",
                               {"type": "integer"})),
    body={"type": "object", "properties": {"instance": {"type": "integer"}}},
    body_required=False, **_ADMIN,
    errors=ADMIN_ERRORS | QUERY_ERRORS | READ_ERRORS | JSON_ERRORS | {
        Error.INVALID_NUMBER, Error.INVALID_INSTANCE, Error.UNKNOWN_INSTANCE})
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
            fail(Error.INVALID_INSTANCE, "instance must be an integer")
        instance = value
    config = snapshot_of(request).config
    if instance is not None and instance not in config.instances:
        fail(Error.UNKNOWN_INSTANCE, f"instance {instance} is not configured")
    ids = [instance] if instance is not None else sorted(config.instances)
    results = await registrations_service(request).opt_out(config, number, ids, time.time())
    changed = [reg for reg, before in results if before != "opted_out"]
    return json_response(OptedOut(changed=len(changed),
                                  registrations=[Registration.of(r) for r, _ in results]))


# ---- the gateway number's business profile (bot/profile.py), as /openapi.json shows it


_TEXT = {"type": ["string", "null"]}
_FIELDS = {"type": "array", "items": {"enum": ["about", "description", "email", "picture",
                                               "websites"]}}
PROFILE_VIEW = object_schema({
    "instance": {"type": "integer"}, "provider": {"type": "string"},
    "supported_fields": {**_FIELDS, "description": "What the provider can set; empty "
                                                  "when its API offers no profile"},
    "source": {"enum": ["config", "admin", None],
               "description": "admin: set through this API (until the process stops)"},
    "profile": {"type": ["object", "null"], "properties": {
        "about": _TEXT, "description": _TEXT, "email": _TEXT,
        "websites": {"type": "array", "items": {"type": "string"}},
        "picture": {"type": ["object", "null"], "properties": {
            "bytes": {"type": "integer"}, "type": {"enum": ["image/jpeg", "image/png"]},
            "sha256": {"type": "string"}}}}},
    "not_supported": {**_FIELDS, "description": "Fields of this profile the provider "
                                               "cannot set (not applied)"},
    "state": {"type": ["object", "null"], "properties": {
        "status": {"enum": ["applied", "partial", "failed", "unsupported"]},
        "source": {"enum": ["config", "admin"]}, "hash": {"type": "string"},
        "applied": _FIELDS, "not_supported": _FIELDS, "error": _TEXT,
        "at": {"type": "number", "description": "Unix time"}}}})
PROFILE_BODY = {"type": "object", "minProperties": 1, "additionalProperties": False,
        "properties": {
            "about": {"type": "string", "minLength": 1, "maxLength": MAX_ABOUT},
            "description": {"type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION},
            "email": {"type": "string", "format": "email", "maxLength": MAX_EMAIL},
            "websites": {"type": "array", "maxItems": MAX_WEBSITES, "items": {
                "type": "string", "format": "uri", "maxLength": MAX_WEBSITE}},
            "picture": {"type": "string", "contentEncoding": "base64",
                        "description": "JPEG or PNG, at most 5 MB decoded; a "
                                       "data:...;base64, prefix is allowed"}}}


# ---- the gateway number's business profile

PROFILE_BODY_LIMIT = 8 * 1024 * 1024  # a 5 MB picture in base64, and the rest


def _instance(request: web.Request) -> InstanceConfig:
    raw = request.match_info["id"]
    # ASCII digits only, and few: int() refuses "²" and numbers of 4300 digits.
    valid = raw.isascii() and raw.isdigit() and len(raw) <= 9
    inst = snapshot_of(request).config.instances.get(int(raw)) if valid else None
    if inst is None:
        fail(Error.UNKNOWN_INSTANCE, f"instance {raw[:20]} is not configured")
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


@routes.operation(
    "get", "/admin/instances/{id}/profile", summary="A gateway number's business profile",
    ok=PROFILE_VIEW, ok_description=_PROFILE_OK, parameters=(_INSTANCE_ID,), **_ADMIN,
    errors=ADMIN_ERRORS | {Error.UNKNOWN_INSTANCE})
async def get_profile(request: web.Request) -> web.Response:
    """The profile in force for a number (the admin's, else the config's) and
    what happened when it was last applied."""
    require_admin(request)
    return json_response(_profile_view(request, _instance(request)))


@routes.operation(
    "put", "/admin/instances/{id}/profile", id="set_profile",
    summary="Set a gateway number's business profile and apply it", ok=PROFILE_VIEW,
    ok_description=_PROFILE_OK, parameters=(_INSTANCE_ID,), body=PROFILE_BODY,
    description="Replaces the config's [instances.profile] until the process stops, and "
                "applies it now through the provider (Meta: picture by resumable upload, "
                "then the business profile; WAHA: about and picture; sandbox: recorded). A "
                "provider's refusal is answered 200 with `state.status: failed` and its "
                "error.",
    **_ADMIN, errors=ADMIN_ERRORS | READ_ERRORS | JSON_ERRORS | {Error.UNKNOWN_INSTANCE,
                                                                 Error.INVALID_PROFILE})
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
        fail(Error.INVALID_PROFILE, str(exc))
    keeper = request.app[profile_keeper_key]
    keeper.overrides[inst.id] = profile
    await keeper.apply(inst)
    log.info("admin set the profile of instance %s", inst.id)
    return json_response(_profile_view(request, inst))
