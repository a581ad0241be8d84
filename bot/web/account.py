"""The self-service API (send-API credentials): a subscriber's own plan, quota,
messages, webhook deliveries and endpoints, and the actions on them. The
portal (bot/web/portal.py) shows the same through the same calls.

GET  /v3/account                          plan, expiry, quota and its period, recipients
GET  /v3/account/messages                 ?status=&error_code=&limit=  own sent messages
GET  /v3/account/deliveries               ?status=&limit=              own webhook deliveries
GET  /v3/account/deliveries/{id}          one, with every attempt
POST /v3/account/deliveries/{id}/retry    queue it again now (same webhook-id)
POST /v3/account/deliveries/replay        ?since=  every failed one since then
GET  /v3/account/webhooks                 own endpoints and their health
POST /v3/account/webhooks/test            a `test` event to each own endpoint
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from aiohttp import web

from bot.config import Config, SubscriberConfig
from bot.services.deliveries import NoEndpoints
from bot.store import Store
from bot.subscribers import subscription_on
from bot.web.auth import require_subscriber
from bot.web.deliveries import (
    delivery_detail_json,
    delivery_json,
    endpoint_json,
    replay_json,
    retry_json,
)
from bot.web.errors import fail
from bot.web.keys import clock_key, store_key
from bot.web.query import query_choice, query_int, query_limit
from bot.web.request_services import deliveries_service
from bot.web.row_json import iso
from bot.web.send import QUOTA_PERIOD, message_json, require_active
from bot.web.snapshot import snapshot_of

routes = web.RouteTableDef()

MESSAGE_STATUSES = ("queued", "sent", "delivered", "read", "failed")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


async def account_json(config: Config, store: Store, sub: SubscriberConfig, now: float,
                       today: dt.date) -> dict[str, Any]:
    """What a subscriber may check about itself; the portal shows the same."""
    subscription = subscription_on(sub, config.plans, today)
    plan = subscription.plan
    usage = await store.send_usage(sub.id, QUOTA_PERIOD, now)
    return {"subscriber": sub.id, "plan": plan.name, "state": subscription.state,
            "expires": subscription.ends.isoformat() if subscription.ends else None,
            "quota": {"limit": plan.messages_per_day, "used": usage.count,
                      "period_started_at": iso(usage.period_start),
                      "resets_at": iso(usage.reset_at)},
            "recipients": {"limit": plan.max_recipients, "used": usage.recipients}}


def _subscriber(request: web.Request) -> SubscriberConfig:
    """Reads are open to a subscription that ended (to see why sends fail)."""
    return require_subscriber(request, snapshot_of(request).config)


def _active_subscriber(request: web.Request) -> SubscriberConfig:
    """Actions need a running subscription, as sending does."""
    config = snapshot_of(request).config
    sub = require_subscriber(request, config)
    require_active(sub, config, request.config_dict[clock_key].today())
    return sub


@routes.get("/v3/account")
async def account(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    clock = request.config_dict[clock_key]
    return web.json_response(await account_json(snapshot_of(request).config,
                                                request.config_dict[store_key], sub,
                                                clock.now(), clock.today()))


@routes.get("/v3/account/messages")
async def messages(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    rows = await request.config_dict[store_key].search_outbound(
        subscriber_id=sub.id, status=query_choice(request, "status", MESSAGE_STATUSES),
        error_code=query_int(request, "error_code"), instance_id=None,
        limit=query_limit(request))
    return web.json_response({"messages": [message_json(r) for r in rows]})


@routes.get("/v3/account/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    rows = await request.config_dict[store_key].list_deliveries(
        status=query_choice(request, "status", DELIVERY_STATUSES), subscriber_id=sub.id,
        endpoint_key=None, limit=query_limit(request))
    return web.json_response({"deliveries": [delivery_json(d) for d in rows]})


@routes.get("/v3/account/deliveries/{id}")
async def delivery(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    return web.json_response(await delivery_detail_json(request, sub.id))


@routes.post("/v3/account/deliveries/{id}/retry")
async def retry(request: web.Request) -> web.Response:
    sub = _active_subscriber(request)
    return web.json_response(await retry_json(request, sub.id))


@routes.post("/v3/account/deliveries/replay")
async def replay(request: web.Request) -> web.Response:
    sub = _active_subscriber(request)
    return web.json_response(await replay_json(request, sub.id))


@routes.get("/v3/account/webhooks")
async def webhooks(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    found = await deliveries_service(request).endpoints(snapshot_of(request).config,
                                                        subscriber_id=sub.id)
    return web.json_response({"endpoints": [endpoint_json(e) for e in found]})


@routes.post("/v3/account/webhooks/test")
async def webhook_test(request: web.Request) -> web.Response:
    sub = _active_subscriber(request)
    try:
        drafts = await deliveries_service(request).send_test(
            snapshot_of(request).config, sub.id, time.time())
    except NoEndpoints:
        fail(409, "no_webhooks", "this subscription has no webhook endpoint configured")
    return web.json_response({"queued": [{"id": d.id, "endpoint": {"key": d.endpoint_key,
                                                                  "url": d.url}}
                                         for d in drafts]})
