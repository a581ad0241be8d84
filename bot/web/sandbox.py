"""The sandbox transport over HTTP: inject inbound messages, list the outbox."""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from bot.events import InboundMessage
from bot.numbers import to_e164
from bot.web.auth import require_admin
from bot.web.errors import fail, read_json
from bot.web.keys import pipeline_key, snapshot_of, store_key
from bot.web.query import query_int, query_limit
from bot.web.views import outbox_json

routes = web.RouteTableDef()

MAX_TEXT = 4096


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
    if inst.provider != "sandbox":
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
    msg = InboundMessage.from_sandbox({**body, "instance": instance, "text": text}, sender=sender,
                                      message_id=msg_id, now=time.time())
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
