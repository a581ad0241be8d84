"""The sandbox transport over HTTP: inject inbound messages, list the outbox,
move a sent message on as a provider's status would."""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from bot.events import GroupRef, InboundMessage, StatusUpdate
from bot.kinds import STATUSES, MessageKind, Status
from bot.numbers import to_e164
from bot.providers.sandbox.caps import CAPS
from bot.web.auth import require_admin
from bot.web.errors import fail, read_json
from bot.web.keys import pipeline_key, store_key
from bot.web.query import query_int, query_limit
from bot.web.row_json import outbox_json
from bot.web.snapshot import snapshot_of

routes = web.RouteTableDef()
NAME = "sandbox"

MAX_TEXT = 4096
MAX_ERROR_CODE = 2**31 - 1
MAX_ERROR_TITLE = 1000


@routes.post("/sandbox/inbound")
async def inbound(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    snap = snapshot_of(request)
    config = snap.config
    instance = body.get("instance", 1)
    if not isinstance(instance, int) or isinstance(instance, bool):
        fail(400, "invalid_instance", "instance must be an integer")
    inst = config.instances.get(instance)
    if inst is None:
        fail(404, "unknown_instance", f"instance {instance} is not configured")
    if inst.provider != NAME:
        fail(400, "not_sandbox", f"instance {instance} uses provider {inst.provider!r}, "
             "not the sandbox")
    sender = to_e164(body.get("from"))
    if sender is None:
        fail(400, "invalid_from", "from must be a phone number with country code, "
             "like +34600000001")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        fail(400, "invalid_text", "text must be a non-empty string")
    if len(text) > MAX_TEXT:
        fail(400, "text_too_long", f"text is over {MAX_TEXT} characters")
    msg_id = body.get("id") or f"sbx.{uuid.uuid4().hex}"
    if not isinstance(msg_id, str) or len(msg_id) > 200:
        fail(400, "invalid_id", "id must be a string of at most 200 characters")
    group = body.get("group")
    if group is not None and not (isinstance(group, dict) and isinstance(group.get("id"), str)
                                  and 0 < len(group["id"]) <= 200
                                  and isinstance(group.get("name", ""), str)
                                  and len(group.get("name", "")) <= 200):
        fail(400, "invalid_group", "group must be {\"id\": \"...\", \"name\": \"...\"}, "
             "each at most 200 characters")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        fail(400, "invalid_name", "name must be a string")
    msg = InboundMessage(provider=NAME, provider_message_id=msg_id, instance_id=instance,
                         sender=sender, profile_name=name, kind=MessageKind.TEXT, text=text,
                         group=GroupRef(id=group["id"], name=group.get("name"))
                         if group else None, timestamp=time.time())
    fresh = await request.app[pipeline_key].handle(msg, snap)
    return web.json_response({"id": msg_id, "duplicate": not fresh})


@routes.get("/sandbox/outbox")
async def outbox(request: web.Request) -> web.Response:
    require_admin(request)
    to = request.query.get("to")
    number = None
    if to:
        number = to_e164(to)
        if number is None:
            fail(400, "invalid_number", "to must be a phone number with country code")
    rows = await request.app[store_key].list_outbox(
        instance_id=query_int(request, "instance"), to=number, limit=query_limit(request))
    return web.json_response({"messages": [outbox_json(r) for r in rows]})


@routes.post("/sandbox/status")
async def status(request: web.Request) -> web.Response:
    """The status a provider would report for a sandbox message, through the
    same path Meta's take: the store's ordering rule (a status never moves a
    message backwards: answered 200 with `applied: false` and the status it
    keeps), then `message.status` webhooks for the subscriber that sent it."""
    require_admin(request)
    body = await read_json(request)
    msg_id = body.get("id")
    if not isinstance(msg_id, str) or not 0 < len(msg_id) <= 200:
        fail(400, "invalid_id", "id must be the message's id (a string of at most 200 "
             "characters), as the send API or the outbox gives it")
    status = Status.parse(body.get("status"), CAPS.statuses)
    if status is None or status is Status.UNKNOWN:
        fail(400, "invalid_status", "status must be one of " + ", ".join(STATUSES))
    code, title = _error_of(body.get("error"), status)
    store = request.app[store_key]
    row = await store.get_outbound(msg_id)
    if row is None:
        fail(404, "message_not_found", f"no message with id {msg_id!r}")
    inst = snapshot_of(request).config.instances.get(row.instance_id)
    provider = inst.provider if inst is not None else "none (no longer configured)"
    if provider != NAME:
        fail(400, "not_sandbox", f"message {msg_id} went out on instance {row.instance_id}, "
             f"whose provider is {provider}, not the sandbox")
    if row.provider_message_id is None:
        fail(409, "not_sent_yet", f"message {msg_id} is still {row.status}: the sandbox has "
             "not sent it yet; try again in a moment")
    event = StatusUpdate(provider=NAME, provider_message_id=row.provider_message_id,
                         instance_id=row.instance_id, status=status, error_code=code,
                         error_title=title, timestamp=time.time())
    applied = await request.app[pipeline_key].handle(event)
    after = await store.get_outbound(msg_id)
    if after is None:  # outbound rows are never deleted; said rather than assumed
        fail(404, "message_not_found", f"no message with id {msg_id!r}")
    return web.json_response({"applied": applied, "message": outbox_json(after)})


def _error_of(error: object, status: Status) -> tuple[int | None, str | None]:
    """The provider's error code and title, given with a failed status only."""
    if error is None:
        return None, None
    if status is not Status.FAILED:
        fail(400, "invalid_error", "error goes with status failed only")
    if not isinstance(error, dict):
        fail(400, "invalid_error", 'error must be {"code": 131026, "title": "..."}')
    code, title = error.get("code"), error.get("title")
    if code is not None and (not isinstance(code, int) or isinstance(code, bool)
                             or not 0 <= code <= MAX_ERROR_CODE):
        fail(400, "invalid_error", f"error.code must be an integer from 0 to {MAX_ERROR_CODE}")
    if title is not None and (not isinstance(title, str) or len(title) > MAX_ERROR_TITLE):
        fail(400, "invalid_error", f"error.title must be a string of at most "
             f"{MAX_ERROR_TITLE} characters")
    return code, title
