"""The admin API of webhook deliveries and endpoints (Bearer token).

GET  /admin/deliveries                   ?status=&subscriber=&endpoint=&limit=
GET  /admin/deliveries/{id}              one delivery with every attempt
POST /admin/deliveries/{id}/retry        queue it again now (same webhook-id)
POST /admin/deliveries/replay            ?since=ISO-or-epoch [&subscriber=&endpoint=]
GET  /admin/endpoints                    every endpoint: configured, failing, disabled
POST /admin/endpoints/{key}/enable       [?subscriber=] enable a disabled endpoint
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any

from aiohttp import web

from bot.services.deliveries import DeliveryNotFound, DeliveryPending, EndpointStatus
from bot.store.models import AttemptRow, DeliveryRow
from bot.web.auth import require_admin
from bot.web.errors import fail
from bot.web.keys import store_key, webhook_worker_key
from bot.web.query import query_choice, query_limit
from bot.web.request_services import deliveries_service
from bot.web.row_json import iso
from bot.web.snapshot import snapshot_of

log = logging.getLogger("wagate.admin")

routes = web.RouteTableDef()

_STATUSES = ("pending", "delivered", "failed")
MAX_SINCE = 253402300799.0  # 9999-12-31T23:59:59Z


def delivery_json(d: DeliveryRow, *, payload: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": d.id, "subscriber": d.subscriber_id,
        "endpoint": {"key": d.endpoint_key, "url": d.url, "format": d.format},
        "type": d.event_type, "status": d.status, "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending" else None,
        "last_status_code": d.last_status_code, "last_error": d.last_error,
        "created_at": iso(d.created_at), "updated_at": iso(d.updated_at),
        "delivered_at": iso(d.delivered_at)}
    if payload:
        try:
            out["payload"] = json.loads(d.payload)
        except ValueError:
            out["payload"] = d.payload
    return out


def attempt_json(a: AttemptRow) -> dict[str, Any]:
    return {"at": iso(a.at), "outcome": a.outcome, "status_code": a.status_code,
            "latency_ms": a.latency_ms, "response_body": a.response_body, "error": a.error}


def _text(request: web.Request, name: str, max_len: int = 200) -> str | None:
    value = request.query.get(name) or None
    if value is not None and len(value) > max_len:
        fail(400, f"invalid_{name}", f"{name} is too long")
    return value


def parse_since(raw: str | None) -> float:
    """`since` as epoch seconds or ISO 8601 (a date, or a time; UTC unless it says)."""
    if not raw:
        fail(400, "missing_since", "since is required: ISO 8601 (2026-11-01T10:00:00Z) or "
             "epoch seconds")
    try:
        since = float(raw)
    except ValueError:
        try:
            when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+", 1)
                                             if "T" in raw and " " in raw else
                                             raw.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            since = when.timestamp()
        except (ValueError, OverflowError):  # not ISO, or out of range in UTC (year 0)
            fail(400, "invalid_since",
                 f"since {raw[:60]!r} is neither ISO 8601 nor epoch seconds")
    # NaN, infinities and years datetime cannot show (before 1970, after 9999).
    if not 0 <= since <= MAX_SINCE:
        fail(400, "invalid_since", f"since {raw[:60]!r} is out of range (1970 to 9999)")
    return since


@routes.get("/admin/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    require_admin(request)
    status = query_choice(request, "status", _STATUSES)
    limit = query_limit(request)
    rows = await request.app[store_key].list_deliveries(
        status=status, subscriber_id=_text(request, "subscriber"),
        endpoint_key=_text(request, "endpoint"), limit=limit)
    return web.json_response({"deliveries": [delivery_json(d) for d in rows]})


@routes.get("/admin/deliveries/{id}")
async def show_delivery(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response(await delivery_detail_json(request, None))


async def delivery_detail_json(request: web.Request, subscriber_id: str | None
                               ) -> dict[str, Any]:
    """`{"delivery": ...}` with the payload and every attempt; 404 for a delivery
    that does not exist or (for a subscriber) is another's."""
    try:
        delivery, attempts = await deliveries_service(request).show(
            request.match_info["id"], subscriber_id=subscriber_id)
    except DeliveryNotFound:
        fail(404, "unknown_delivery", "no such delivery")
    return {"delivery": {**delivery_json(delivery, payload=True),
                         "attempt_log": [attempt_json(a) for a in attempts]}}


@routes.post("/admin/deliveries/replay")
async def replay(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response(await replay_json(request, _text(request, "subscriber")))


async def replay_json(request: web.Request, subscriber_id: str | None) -> dict[str, Any]:
    since = parse_since(request.query.get("since"))
    count = await deliveries_service(request).replay(
        since, time.time(), subscriber_id=subscriber_id, endpoint_key=_text(request, "endpoint"))
    return {"replayed": count, "since": iso(since)}


@routes.post("/admin/deliveries/{id}/retry")
async def retry(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response(await retry_json(request, None))


async def retry_json(request: web.Request, subscriber_id: str | None) -> dict[str, Any]:
    try:
        row = await deliveries_service(request).retry(request.match_info["id"], time.time(),
                                                      subscriber_id=subscriber_id)
    except DeliveryNotFound:
        fail(404, "unknown_delivery", "no such delivery")
    except DeliveryPending:
        fail(409, "already_pending", "this delivery is already queued")
    return {"delivery": delivery_json(row)}


def endpoint_json(e: EndpointStatus) -> dict[str, Any]:
    health = e.health
    return {"subscriber": e.subscriber_id, "key": e.key, "url": e.url, "format": e.format,
            "configured": e.configured, "status": e.status,
            "failing_since": iso(health.failing_since) if health else None,
            "last_success_at": iso(health.last_success_at) if health else None,
            "last_failure_at": iso(health.last_failure_at) if health else None,
            "disabled_at": iso(health.disabled_at) if health else None,
            "disabled_reason": health.disabled_reason if health else None,
            "pending": health.pending if health else 0,
            "failed": health.failed if health else 0}


@routes.get("/admin/endpoints")
async def endpoints(request: web.Request) -> web.Response:
    """Every configured webhook and every endpoint with a history, never a secret."""
    require_admin(request)
    found = await deliveries_service(request).endpoints(snapshot_of(request).config)
    return web.json_response({"endpoints": [endpoint_json(e) for e in found]})


@routes.post("/admin/endpoints/{key}/enable")
async def enable(request: web.Request) -> web.Response:
    require_admin(request)
    key = request.match_info["key"][:64]
    subscriber = _text(request, "subscriber")
    store = request.app[store_key]
    known = any(h.endpoint_key == key and (subscriber is None or h.subscriber_id == subscriber)
                for h in await store.list_endpoint_health()) or any(
        hook.key == key for sub in snapshot_of(request).config.subscribers.values()
        if subscriber is None or sub.id == subscriber for hook in sub.webhooks)
    if not known:
        fail(404, "unknown_endpoint", f"no webhook endpoint {key}")
    count = await store.enable_endpoint(key, subscriber)
    if count:
        log.warning("admin: webhook endpoint %s enabled again", key)
        request.app[webhook_worker_key].notify()
    return web.json_response({"key": key, "enabled": count})
