"""Meta's webhook endpoint: the verification handshake and signed event POSTs."""

from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web

from bot.providers.meta import parse_payload, verify_signature
from bot.web.errors import fail, read_body
from bot.web.keys import pipeline_key, snapshot_of

log = logging.getLogger("wagate.meta")
routes = web.RouteTableDef()

# Meta batches up to 1000 updates; 3 MB is well beyond what it sends.
META_BODY_LIMIT = 3 * 1024 * 1024


@routes.get("/webhooks/meta")
async def verify(request: web.Request) -> web.Response:
    meta = snapshot_of(request).config.meta
    if meta is None:
        fail(404, "not_configured", "the meta provider is not configured")
    q = request.query
    if q.get("hub.mode") != "subscribe" or "hub.challenge" not in q:
        fail(400, "bad_handshake", "expected hub.mode=subscribe with hub.challenge")
    token = q.get("hub.verify_token", "")
    if not hmac.compare_digest(token.encode("utf-8", "surrogateescape"),
                               meta.verify_token.encode()):
        fail(403, "bad_verify_token", "hub.verify_token does not match")
    return web.Response(text=q["hub.challenge"])


@routes.post("/webhooks/meta")
async def receive(request: web.Request) -> web.Response:
    snap = snapshot_of(request)
    meta = snap.config.meta
    if meta is None:
        fail(404, "not_configured", "the meta provider is not configured")
    raw = await read_body(request, META_BODY_LIMIT)
    # The signature covers the raw bytes: check it before parsing anything.
    ok = verify_signature(meta.app_secret, raw, request.headers.get("X-Hub-Signature-256"))
    if ok is None:
        fail(401, "missing_signature", "X-Hub-Signature-256 header is required")
    if not ok:
        fail(403, "bad_signature", "X-Hub-Signature-256 does not match the body")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        fail(400, "malformed_json", "body is not valid JSON")
    except RecursionError:
        fail(400, "malformed_json", "body is nested too deeply")
    try:
        batch = parse_payload(payload, snap.config.instances_by_phone_number_id)
    except ValueError as exc:
        fail(400, "bad_payload", str(exc))
    for reason in batch.skipped:
        log.warning("meta webhook: %s", reason)
    if batch.skipped and not batch.events:
        fail(400, "nothing_usable", "; ".join(batch.skipped[:5]))
    pipeline = request.app[pipeline_key]
    fresh = 0
    for event in batch.events:
        if await pipeline.handle(event, snap):
            fresh += 1
    return web.json_response({"received": len(batch.events), "new": fresh,
                              "skipped": len(batch.skipped)})
