"""The sandbox transport over HTTP: inject inbound messages, list the outbox,
move a sent message on as a provider's status would."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from aiohttp import web

from bot.events import GroupRef, InboundMessage, StatusUpdate
from bot.kinds import STATUSES, MessageKind, Status
from bot.numbers import to_e164
from bot.providers.sandbox.caps import CAPS
from bot.web.auth import ADMIN_ERRORS, require_admin
from bot.web.catalog import Error
from bot.web.errors import JSON_ERRORS, READ_ERRORS, fail, read_json
from bot.web.keys import pipeline_key, store_key
from bot.web.operations import LIMIT, ApiRoutes, json_response, query
from bot.web.query import QUERY_ERRORS, query_int, query_limit
from bot.web.row_json import OutboxMessage
from bot.web.snapshot import snapshot_of

routes = ApiRoutes()
NAME = "sandbox"

MAX_TEXT = 4096
MAX_ERROR_CODE = 2**31 - 1
MAX_ERROR_TITLE = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Injected:
    id: str
    duplicate: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbox:
    messages: list[OutboxMessage]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusApplied:
    applied: bool
    message: OutboxMessage


_SANDBOX = {"tag": "sandbox", "security": "admin"}
_BODY_ERRORS = ADMIN_ERRORS | READ_ERRORS | JSON_ERRORS


@routes.operation(
    "post", "/sandbox/inbound", id="sandbox_inbound",
    summary="Inject an inbound text message on a sandbox instance", ok=Injected,
    ok_description="Handled as a message from the user would be; `duplicate` when the id was "
                   "seen before",
    body={"type": "object", "required": ["from", "text"], "properties": {
        "instance": {"type": "integer", "default": 1},
        "from": {"type": ["string", "integer"], "examples": ["+34600000001"],
                 "description": "Sender, with country code"},
        "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        "id": {"type": "string", "maxLength": 200,
               "description": "Provider message id; generated when absent"},
        "name": {"type": "string", "description": "Sender's profile name"},
        "group": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 200},
            "name": {"type": "string", "maxLength": 200}}}}},
    **_SANDBOX, errors=_BODY_ERRORS | {
        Error.INVALID_INSTANCE, Error.UNKNOWN_INSTANCE, Error.NOT_SANDBOX, Error.INVALID_FROM,
        Error.TEXT_TOO_LONG, Error.INVALID_ID, Error.INVALID_GROUP, Error.INVALID_NAME})
async def inbound(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    snap = snapshot_of(request)
    config = snap.config
    instance = body.get("instance", 1)
    if not isinstance(instance, int) or isinstance(instance, bool):
        fail(Error.INVALID_INSTANCE, "instance must be an integer")
    inst = config.instances.get(instance)
    if inst is None:
        fail(Error.UNKNOWN_INSTANCE, f"instance {instance} is not configured")
    if inst.provider != NAME:
        fail(Error.NOT_SANDBOX, f"instance {instance} uses provider {inst.provider!r}, "
             "not the sandbox")
    sender = to_e164(body.get("from"))
    if sender is None:
        fail(Error.INVALID_FROM, "from must be a phone number with country code, "
             "like +34600000001")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        fail(Error.INVALID_TEXT, "text must be a non-empty string")
    if len(text) > MAX_TEXT:
        fail(Error.TEXT_TOO_LONG, f"text is over {MAX_TEXT} characters")
    msg_id = body.get("id") or f"sbx.{uuid.uuid4().hex}"
    if not isinstance(msg_id, str) or len(msg_id) > 200:
        fail(Error.INVALID_ID, "id must be a string of at most 200 characters")
    group = body.get("group")
    if group is not None and not (isinstance(group, dict) and isinstance(group.get("id"), str)
                                  and 0 < len(group["id"]) <= 200
                                  and isinstance(group.get("name", ""), str)
                                  and len(group.get("name", "")) <= 200):
        fail(Error.INVALID_GROUP, "group must be {\"id\": \"...\", \"name\": \"...\"}, "
             "each at most 200 characters")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        fail(Error.INVALID_NAME, "name must be a string")
    msg = InboundMessage(provider=NAME, provider_message_id=msg_id, instance_id=instance,
                         sender=sender, profile_name=name, kind=MessageKind.TEXT, text=text,
                         group=GroupRef(id=group["id"], name=group.get("name"))
                         if group else None, timestamp=time.time())
    fresh = await request.app[pipeline_key].handle(msg, snap)
    return json_response(Injected(id=msg_id, duplicate=not fresh))


@routes.operation(
    "get", "/sandbox/outbox", id="sandbox_outbox",
    summary="The latest messages sent through the sandbox, oldest first", ok=Outbox,
    ok_description="Messages",
    parameters=(query("instance", "Only this instance id", {"type": "integer"}),
                query("to", "Only to this phone number", {"type": "string"}), LIMIT),
    **_SANDBOX, errors=ADMIN_ERRORS | QUERY_ERRORS | {Error.INVALID_NUMBER})
async def outbox(request: web.Request) -> web.Response:
    require_admin(request)
    to = request.query.get("to")
    number = None
    if to:
        number = to_e164(to)
        if number is None:
            fail(Error.INVALID_NUMBER, "to must be a phone number with country code")
    rows = await request.app[store_key].list_outbox(
        instance_id=query_int(request, "instance"), to=number, limit=query_limit(request))
    return json_response(Outbox(messages=[OutboxMessage.of(r) for r in rows]))


@routes.operation(
    "post", "/sandbox/status", id="sandbox_status",
    summary="Report a provider status for a sandbox message", ok=StatusApplied,
    ok_description="Handled as a provider's status would be: `applied` is false when the "
                   "message already has this status or a later one (a status never moves a "
                   "message backwards), and `message` shows the status it has",
    description="Moves the message through the same path a Meta status takes: its status, as "
                "`GET /v3/whatsapp/messages/{id}` shows it, and a `message.status` webhook "
                "for the subscriber that sent it.",
    body={"type": "object", "required": ["id", "status"], "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 200,
               "description": "The message's id, as the send API or the outbox gives it"},
        "status": {"enum": list(STATUSES)},
        "error": {"type": "object", "description": "With status failed only", "properties": {
            "code": {"type": "integer", "minimum": 0, "maximum": MAX_ERROR_CODE},
            "title": {"type": "string", "maxLength": MAX_ERROR_TITLE}}}}},
    **_SANDBOX, errors=_BODY_ERRORS | {
        Error.INVALID_ID, Error.INVALID_STATUS, Error.INVALID_ERROR, Error.NOT_SANDBOX,
        Error.MESSAGE_NOT_FOUND, Error.NOT_SENT_YET})
async def status(request: web.Request) -> web.Response:
    """The status a provider would report for a sandbox message, through the
    same path Meta's take: the store's ordering rule (a status never moves a
    message backwards: answered 200 with `applied: false` and the status it
    keeps), then `message.status` webhooks for the subscriber that sent it."""
    require_admin(request)
    body = await read_json(request)
    msg_id = body.get("id")
    if not isinstance(msg_id, str) or not 0 < len(msg_id) <= 200:
        fail(Error.INVALID_ID, "id must be the message's id (a string of at most 200 "
             "characters), as the send API or the outbox gives it")
    status = Status.parse(body.get("status"), CAPS.statuses)
    if status is None or status is Status.UNKNOWN:
        fail(Error.INVALID_STATUS, "status must be one of " + ", ".join(STATUSES))
    code, title = _error_of(body.get("error"), status)
    store = request.app[store_key]
    row = await store.get_outbound(msg_id)
    if row is None:
        fail(Error.MESSAGE_NOT_FOUND, f"no message with id {msg_id!r}")
    inst = snapshot_of(request).config.instances.get(row.instance_id)
    provider = inst.provider if inst is not None else "none (no longer configured)"
    if provider != NAME:
        fail(Error.NOT_SANDBOX, f"message {msg_id} went out on instance {row.instance_id}, "
             f"whose provider is {provider}, not the sandbox")
    if row.provider_message_id is None:
        fail(Error.NOT_SENT_YET, f"message {msg_id} is still {row.status}: the sandbox has "
             "not sent it yet; try again in a moment")
    event = StatusUpdate(provider=NAME, provider_message_id=row.provider_message_id,
                         instance_id=row.instance_id, status=status, error_code=code,
                         error_title=title, timestamp=time.time())
    applied = await request.app[pipeline_key].handle(event)
    after = await store.get_outbound(msg_id)
    if after is None:  # outbound rows are never deleted; said rather than assumed
        fail(Error.MESSAGE_NOT_FOUND, f"no message with id {msg_id!r}")
    return json_response(StatusApplied(applied=applied, message=OutboxMessage.of(after)))


def _error_of(error: object, status: Status) -> tuple[int | None, str | None]:
    """The provider's error code and title, given with a failed status only."""
    if error is None:
        return None, None
    if status is not Status.FAILED:
        fail(Error.INVALID_ERROR, "error goes with status failed only")
    if not isinstance(error, dict):
        fail(Error.INVALID_ERROR, 'error must be {"code": 131026, "title": "..."}')
    code, title = error.get("code"), error.get("title")
    if code is not None and (not isinstance(code, int) or isinstance(code, bool)
                             or not 0 <= code <= MAX_ERROR_CODE):
        fail(Error.INVALID_ERROR, f"error.code must be an integer from 0 to {MAX_ERROR_CODE}")
    if title is not None and (not isinstance(title, str) or len(title) > MAX_ERROR_TITLE):
        fail(Error.INVALID_ERROR, f"error.title must be a string of at most "
             f"{MAX_ERROR_TITLE} characters")
    return code, title
