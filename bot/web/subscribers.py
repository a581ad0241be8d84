"""Subscribers at runtime: the admin's `/admin/subscribers` (the file's
provisioned ones shown too, read-only), client secrets issued by the admin or
by the subscriber itself (`/v3/account/secrets`), and the audit log
(`/admin/audit`). The work is bot/services/subscribers.py's."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn

from aiohttp import web

from bot.config import Config, SubscriberConfig
from bot.services.subscribers import Actor, Issued, Reason, Refused
from bot.store.models import AuditRow
from bot.subscribers import subscription_on
from bot.web.auth import ADMIN_ERRORS, SUBSCRIBER_ERRORS, require_admin, require_subscriber
from bot.web.catalog import Error
from bot.web.clients import client_address
from bot.web.deliveries import parse_since
from bot.web.errors import JSON_ERRORS, READ_ERRORS, fail, parse_json_object, read_body
from bot.web.keys import clock_key, store_key
from bot.web.operations import (
    LIMIT,
    ApiRoutes,
    MaybeTime,
    Time,
    doc,
    json_response,
    path_param,
    query,
)
from bot.web.query import QUERY_ERRORS, query_int, query_limit
from bot.web.request_services import subscribers_service
from bot.web.row_json import iso_time
from bot.web.snapshot import snapshot_of

routes = ApiRoutes()

_ADMIN = {"tag": "subscribers", "security": "admin"}
_ID = path_param("id", "The subscriber's id")

# What each route answers for the service's refusals (its declared errors).
Refusals = dict[Reason, Error]
FIELD_REFUSALS: Refusals = {
    "invalid": Error.INVALID_FIELD, "missing": Error.MISSING_FIELD,
    "unknown_plan": Error.UNKNOWN_PLAN, "keyword_taken": Error.KEYWORD_TAKEN,
    "conflict": Error.CONCURRENT_CHANGE}
CREATE_REFUSALS: Refusals = FIELD_REFUSALS | {"exists": Error.SUBSCRIBER_EXISTS}
CHANGE_REFUSALS: Refusals = {"not_found": Error.UNKNOWN_SUBSCRIBER,
                             "provisioned": Error.PROVISIONED}
UPDATE_REFUSALS: Refusals = FIELD_REFUSALS | CHANGE_REFUSALS
ROTATE_REFUSALS: Refusals = {"not_found": Error.UNKNOWN_SUBSCRIBER,
                             "not_self_service": Error.NOT_SELF_SERVICE,
                             "invalid": Error.INVALID_FIELD}


# The pages' forms show a refusal with the status the API answers it with.
PAGE_REFUSALS: Refusals = CREATE_REFUSALS | UPDATE_REFUSALS | ROTATE_REFUSALS


def refused(exc: Refused, refusals: Refusals) -> NoReturn:
    fail(refusals[exc.reason], exc.message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscriber:
    """A subscriber as the admin sees it (never a secret)."""

    id: str
    client_id: str
    managed_by: Annotated[Literal["config", "store"], doc(
        "config: provisioned by the config file (change it there); store: managed here")]
    name: str | None
    email: str | None
    plan: str
    since: Annotated[str, {"format": "date"}]
    expires: Annotated[str | None, {"format": "date"}]
    instances: list[int]
    keyword: str | None
    suspended: bool
    self_service: Annotated[bool, doc("May rotate its own secret (/v3/account/secrets)")]
    state: Literal["active", "expired", "not_started", "suspended"]
    older_secrets_until: Annotated[list[str], doc(
        "When each earlier secret, still accepted during its overlap, stops (ISO 8601)")]

    @classmethod
    def of(cls, sub: SubscriberConfig, config: Config, today: dt.date,
           now: float) -> Subscriber:
        return cls(id=sub.id, client_id=sub.client_id, managed_by=sub.managed_by,
                   name=sub.name, email=sub.email, plan=sub.plan,
                   since=sub.since.isoformat(),
                   expires=sub.expires.isoformat() if sub.expires else None,
                   instances=list(sub.instances), keyword=sub.keyword, suspended=sub.suspended,
                   self_service=sub.self_service or sub.managed_by == "store",
                   state=subscription_on(sub, config.plans, today).state,  # type: ignore[arg-type]
                   older_secrets_until=[iso_time(s.expires_at) for s in sub.older_secrets
                                        if s.expires_at > now])


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberList:
    subscribers: list[Subscriber]


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """A secret as issued: shown this once, never again (the store keeps its hash)."""

    subscriber: Subscriber
    client_id: str
    secret: Annotated[str, doc("Shown this once")]
    previous_secrets_until: Annotated[MaybeTime, doc(
        "When the earlier secrets stop being accepted (null: there were none)")]


@dataclass(frozen=True, slots=True, kw_only=True)
class Deleted:
    status: Literal["deleted"] = "deleted"
    id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    seq: int
    at: Time
    actor: Annotated[str, doc('"admin", "config" or "subscriber:<id>"')]
    address: str | None
    action: str
    target: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, row: AuditRow) -> AuditRecord:
        return cls(seq=row.seq, at=iso_time(row.at), actor=row.actor, address=row.address,
                   action=row.action, target=row.target, details=dict(row.details))


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditLog:
    entries: list[AuditRecord]
    next_before: Annotated[int | None, doc("Pass as `before` for the next (older) page")]


def _admin(request: web.Request) -> Actor:
    require_admin(request)
    return Actor("admin", client_address(request))


def _view(request: web.Request, sub: SubscriberConfig) -> Subscriber:
    clock = request.config_dict[clock_key]
    return Subscriber.of(sub, snapshot_of(request).config, clock.today(), clock.now())


def _credentials(request: web.Request, issued: Issued) -> web.Response:
    return json_response(Credentials(
        subscriber=_view(request, issued.subscriber), client_id=issued.subscriber.client_id,
        secret=issued.secret, previous_secrets_until=iso_time(issued.older_until)
        if issued.older_until is not None else None), status=201)


async def json_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The JSON object a change sends (`required=False`: an empty body is `{}`)."""
    raw = await read_body(request)
    if not required and not raw.strip():
        return {}
    return parse_json_object(raw)


_FIELDS_DOC = {
    "plan": {"type": "string", "description": "A configured plan (default trial)"},
    "since": {"type": "string", "format": "date", "description": "Default: today (UTC)"},
    "expires": {"type": ["string", "null"], "format": "date",
                "description": "The first day it no longer works; null: open-ended"},
    "instances": {"type": "array", "items": {"type": "integer"},
                  "description": "Shared numbers it may send from"},
    "keyword": {"type": ["string", "null"], "pattern": r"^\w{2,32}$"},
    "email": {"type": ["string", "null"], "format": "email"},
    "name": {"type": ["string", "null"], "maxLength": 200}}


@routes.operation(
    "post", "/admin/subscribers", id="create_subscriber",
    summary="Create a managed subscriber: its CLIENT_ID and secret, shown once",
    ok=Credentials, ok_description="Created", **_ADMIN,
    body={"type": "object", "required": ["id"], "additionalProperties": False,
          "properties": {"id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"},
                         **_FIELDS_DOC}},
    description="The secret is 32 random bytes, shown in this answer only; the store keeps "
                "its SHA-256. In force in every process within a second.",
    errors=ADMIN_ERRORS | READ_ERRORS | JSON_ERRORS | set(CREATE_REFUSALS.values()))
async def create(request: web.Request) -> web.Response:
    actor = _admin(request)
    body = await json_body(request)
    try:
        issued = await subscribers_service(request).create(snapshot_of(request).config, body, actor)
    except Refused as exc:
        refused(exc, CREATE_REFUSALS)
    return _credentials(request, issued)


@routes.operation(
    "get", "/admin/subscribers", id="list_subscribers",
    summary="Every subscriber: the config file's and the managed ones", ok=SubscriberList,
    ok_description="Subscribers", **_ADMIN, errors=ADMIN_ERRORS)
async def list_all(request: web.Request) -> web.Response:
    require_admin(request)
    config = snapshot_of(request).config
    return json_response(SubscriberList(subscribers=[_view(request, s)
                                                     for s in config.subscribers.values()]))


def _found(request: web.Request) -> SubscriberConfig:
    sub_id = request.match_info["id"]
    sub = snapshot_of(request).config.subscribers.get(sub_id)
    if sub is None:
        fail(Error.UNKNOWN_SUBSCRIBER, f"no subscriber {sub_id[:80]!r}")
    return sub


@routes.operation(
    "get", "/admin/subscribers/{id}", id="get_subscriber", summary="One subscriber",
    ok=Subscriber, ok_description="The subscriber", parameters=(_ID,), **_ADMIN,
    errors=ADMIN_ERRORS | {Error.UNKNOWN_SUBSCRIBER})
async def get_one(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response(_view(request, _found(request)))


@routes.operation(
    "patch", "/admin/subscribers/{id}", id="update_subscriber",
    summary="Change a managed subscriber", ok=Subscriber, ok_description="As it is now",
    parameters=(_ID,), **_ADMIN,
    body={"type": "object", "additionalProperties": False, "properties": _FIELDS_DOC},
    description="A new plan keeps the running quota period's count. A provisioned "
                "subscriber answers 409 `provisioned`.",
    errors=ADMIN_ERRORS | READ_ERRORS | JSON_ERRORS | set(UPDATE_REFUSALS.values()))
async def update(request: web.Request) -> web.Response:
    actor = _admin(request)
    body = await json_body(request)
    try:
        sub = await subscribers_service(request).update(snapshot_of(request).config,
                                             request.match_info["id"], body, actor)
    except Refused as exc:
        refused(exc, UPDATE_REFUSALS)
    return json_response(_view(request, sub))


async def _suspend(request: web.Request, suspended: bool) -> web.Response:
    actor = _admin(request)
    try:
        sub = await subscribers_service(request).suspend(snapshot_of(request).config,
                                              request.match_info["id"], suspended, actor)
    except Refused as exc:
        refused(exc, CHANGE_REFUSALS)
    return json_response(_view(request, sub))


@routes.operation(
    "post", "/admin/subscribers/{id}/suspend", id="suspend_subscriber",
    summary="Suspend a managed subscriber: its sends are refused (474) until resumed",
    ok=Subscriber, ok_description="Suspended", parameters=(_ID,), **_ADMIN,
    errors=ADMIN_ERRORS | set(CHANGE_REFUSALS.values()))
async def suspend(request: web.Request) -> web.Response:
    return await _suspend(request, True)


@routes.operation(
    "post", "/admin/subscribers/{id}/resume", id="resume_subscriber",
    summary="Resume a suspended managed subscriber", ok=Subscriber, ok_description="Resumed",
    parameters=(_ID,), **_ADMIN, errors=ADMIN_ERRORS | set(CHANGE_REFUSALS.values()))
async def resume(request: web.Request) -> web.Response:
    return await _suspend(request, False)


@routes.operation(
    "delete", "/admin/subscribers/{id}", id="delete_subscriber",
    summary="Delete a managed subscriber: its credentials stop at once",
    ok=Deleted, ok_description="Deleted", parameters=(_ID,), **_ADMIN,
    description="Its messages and delivery history stay; its id is not reused. It answers "
                "404 from then on.",
    errors=ADMIN_ERRORS | set(CHANGE_REFUSALS.values()))
async def delete(request: web.Request) -> web.Response:
    actor = _admin(request)
    sub_id = request.match_info["id"]
    try:
        await subscribers_service(request).delete(snapshot_of(request).config, sub_id, actor)
    except Refused as exc:
        refused(exc, CHANGE_REFUSALS)
    return json_response(Deleted(id=sub_id))


_OVERLAP_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "overlap_hours": {"type": "number", "minimum": 0, "default": 24,
                      "description": "How long the earlier secrets keep working; 0 ends "
                                     "them now"}}}
_ROTATE_ERRORS = READ_ERRORS | JSON_ERRORS | set(ROTATE_REFUSALS.values())


async def _rotate(request: web.Request, sub_id: str, actor: Actor) -> web.Response:
    body = await json_body(request, required=False)
    if unknown := sorted(set(body) - {"overlap_hours"}):
        fail(Error.INVALID_FIELD, f"unknown field {unknown[0][:40]!r} (known: overlap_hours)")
    try:
        issued = await subscribers_service(request).rotate(snapshot_of(request).config, sub_id,
                                                body.get("overlap_hours"), actor)
    except Refused as exc:
        refused(exc, ROTATE_REFUSALS)
    return _credentials(request, issued)


@routes.operation(
    "post", "/admin/subscribers/{id}/secrets", id="rotate_subscriber_secret",
    summary="Issue a new client secret (shown once); the earlier ones keep working "
            "overlap_hours", ok=Credentials, ok_description="Issued", parameters=(_ID,),
    body=_OVERLAP_BODY, body_required=False, **_ADMIN, errors=ADMIN_ERRORS | _ROTATE_ERRORS)
async def admin_rotate(request: web.Request) -> web.Response:
    actor = _admin(request)
    return await _rotate(request, request.match_info["id"], actor)


@routes.operation(
    "post", "/v3/account/secrets", id="rotate_own_secret",
    summary="Issue yourself a new client secret (shown once); the current one keeps "
            "working overlap_hours", ok=Credentials, ok_description="Issued",
    body=_OVERLAP_BODY, body_required=False, tag="account", security="account",
    description="For a leaked secret: `overlap_hours: 0` ends every earlier secret now.",
    errors=SUBSCRIBER_ERRORS | _ROTATE_ERRORS)
async def own_rotate(request: web.Request) -> web.Response:
    sub = require_subscriber(request, snapshot_of(request).config)
    return await _rotate(request, sub.id, Actor(f"subscriber:{sub.id}", client_address(request)))


@routes.operation(
    "get", "/admin/audit", id="audit_log",
    summary="The audit log, newest first: every change to subscribers and their secrets, "
            "and every config reload", ok=AuditLog, ok_description="Entries",
    parameters=(query("since", "Only entries at or after this time (ISO 8601 or epoch "
                               "seconds)", {"type": "string"}),
                query("actor", 'Only this actor ("admin", "config", "subscriber:<id>")',
                      {"type": "string"}),
                query("target", "Only entries about this subscriber", {"type": "string"}),
                query("before", "Only entries before this seq (the previous page's "
                                "next_before)", {"type": "integer"}), LIMIT),
    **_ADMIN, errors=ADMIN_ERRORS | QUERY_ERRORS | {Error.INVALID_SINCE, Error.MISSING_SINCE})
async def audit(request: web.Request) -> web.Response:
    require_admin(request)
    rows, next_before = await audit_entries(request, query_limit(request))
    return json_response(AuditLog(entries=[AuditRecord.of(r) for r in rows],
                                  next_before=next_before))


async def audit_entries(request: web.Request, limit: int) -> tuple[list[AuditRow], int | None]:
    """The audit log as the query filters it (since, actor, target, before), a
    page of `limit` entries, and the `before` of the next page (the dashboard's
    Audit log page reads it so too)."""
    since = parse_since(request.query["since"]) if request.query.get("since") else None
    rows = await request.config_dict[store_key].list_audit(
        since=since, actor=request.query.get("actor") or None,
        target=request.query.get("target") or None, before=query_int(request, "before"),
        limit=limit)
    return rows, rows[-1].seq if len(rows) == limit else None
