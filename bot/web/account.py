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
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from aiohttp import web

from bot.config import Config, SubscriberConfig
from bot.services.deliveries import NoEndpoints
from bot.services.sends import QUOTA_PERIOD
from bot.store import Store
from bot.subscribers import subscription_on
from bot.web.auth import SUBSCRIBER_ERRORS, require_subscriber
from bot.web.catalog import Error
from bot.web.deliveries import (
    DELIVERY_ID,
    SINCE,
    SINCE_ERRORS,
    Deliveries,
    Delivery,
    DeliveryShown,
    DeliveryStatus,
    Endpoint,
    Endpoints,
    Replayed,
    Retried,
    replayed,
    retried,
    shown_delivery,
)
from bot.web.errors import fail
from bot.web.keys import clock_key, store_key
from bot.web.operations import LIMIT, ApiRoutes, MaybeTime, doc, json_response, query, to_json
from bot.web.query import QUERY_ERRORS, query_choice, query_int, query_limit
from bot.web.request_services import deliveries_service
from bot.web.row_json import Message, Messages, MessageStatusName, iso
from bot.web.send import ACTIVE_ERRORS, require_active
from bot.web.snapshot import snapshot_of

routes = ApiRoutes()

MESSAGE_STATUSES: tuple[str, ...] = get_args(MessageStatusName)
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)


@dataclass(frozen=True, slots=True, kw_only=True)
class Quota:
    limit: int
    used: int
    period_started_at: MaybeTime
    resets_at: MaybeTime


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipients:
    limit: int
    used: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    subscriber: str
    plan: str
    state: Literal["active", "expired", "not_started", "suspended"]
    expires: Annotated[str | None, {"format": "date"}, doc(
        "The first day it no longer works; null: open-ended")]
    quota: Quota
    recipients: Recipients


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedEndpoint:
    key: str
    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedTest:
    id: str
    endpoint: QueuedEndpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class TestsQueued:
    queued: list[QueuedTest]


async def account_json(config: Config, store: Store, sub: SubscriberConfig, now: float,
                       today: dt.date) -> dict[str, Any]:
    """What a subscriber may check about itself; the portal shows the same."""
    subscription = subscription_on(sub, config.plans, today)
    plan = subscription.plan
    usage = await store.send_usage(sub.id, QUOTA_PERIOD, now)
    account = Account(
        subscriber=sub.id, plan=plan.name,
        state=subscription.state,  # type: ignore[arg-type]
        expires=subscription.ends.isoformat() if subscription.ends else None,
        quota=Quota(limit=plan.messages_per_day, used=usage.count,
                    period_started_at=iso(usage.period_start), resets_at=iso(usage.reset_at)),
        recipients=Recipients(limit=plan.max_recipients, used=usage.recipients))
    return to_json(account)  # type: ignore[no-any-return]


def _subscriber(request: web.Request) -> SubscriberConfig:
    """Reads are open to a subscription that ended (to see why sends fail)."""
    return require_subscriber(request, snapshot_of(request).config)


def active_subscriber(request: web.Request) -> SubscriberConfig:
    """Actions need a running subscription, as sending does."""
    config = snapshot_of(request).config
    sub = require_subscriber(request, config)
    require_active(sub, config, request.config_dict[clock_key].today())
    return sub


_ACCOUNT = {"tag": "account", "security": "account"}


@routes.operation(
    "get", "/v3/account", summary="Own plan, expiry, quota in the running period, recipients",
    ok=Account, ok_description="The account", **_ACCOUNT, errors=SUBSCRIBER_ERRORS,
    description="Open to a subscription that ended, so its holder can see why sends are "
                "refused.")
async def account(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    clock = request.config_dict[clock_key]
    return json_response(await account_json(snapshot_of(request).config,
                                                request.config_dict[store_key], sub,
                                                clock.now(), clock.today()))


@routes.operation(
    "get", "/v3/account/messages", id="account_messages",
    summary="Own sent messages, newest first", ok=Messages, ok_description="Messages",
    parameters=(query("status", "Only this status", {"enum": list(MESSAGE_STATUSES)}),
                query("error_code", "Only failures with this provider error code",
                      {"type": "integer"}), LIMIT),
    **_ACCOUNT, errors=SUBSCRIBER_ERRORS | QUERY_ERRORS | {Error.INVALID_STATUS})
async def messages(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    rows = await request.config_dict[store_key].search_outbound(
        subscriber_id=sub.id, status=query_choice(request, Error.INVALID_STATUS,
                                                  MESSAGE_STATUSES),
        error_code=query_int(request, "error_code"), instance_id=None,
        limit=query_limit(request))
    return json_response(Messages(messages=[Message.of(r) for r in rows]))


@routes.operation(
    "get", "/v3/account/deliveries", id="account_deliveries",
    summary="Own webhook deliveries, newest first", ok=Deliveries, ok_description="Deliveries",
    parameters=(query("status", "Only this status", {"enum": list(DELIVERY_STATUSES)}), LIMIT),
    **_ACCOUNT, errors=SUBSCRIBER_ERRORS | QUERY_ERRORS | {Error.INVALID_STATUS})
async def deliveries(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    rows = await request.config_dict[store_key].list_deliveries(
        status=query_choice(request, Error.INVALID_STATUS, DELIVERY_STATUSES),
        subscriber_id=sub.id, endpoint_key=None, limit=query_limit(request))
    return json_response(Deliveries(deliveries=[Delivery.of(d) for d in rows]))


@routes.operation(
    "get", "/v3/account/deliveries/{id}", id="account_delivery",
    summary="One own delivery with its payload and every attempt", ok=DeliveryShown,
    ok_description="The delivery", parameters=(DELIVERY_ID,), **_ACCOUNT,
    errors=SUBSCRIBER_ERRORS | {Error.UNKNOWN_DELIVERY})
async def delivery(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    return json_response(await shown_delivery(request, sub.id))


@routes.operation(
    "post", "/v3/account/deliveries/{id}/retry", id="account_retry_delivery",
    summary="Send an own delivery now (same webhook-id): a failed one again, a pending "
            "one pulled forward", ok=Retried,
    ok_description="The delivery, and what the retry did", parameters=(DELIVERY_ID,),
    **_ACCOUNT,
    errors=ACTIVE_ERRORS | {Error.UNKNOWN_DELIVERY, Error.ALREADY_PENDING})
async def retry(request: web.Request) -> web.Response:
    sub = active_subscriber(request)
    return json_response(await retried(request, sub.id))


@routes.operation(
    "post", "/v3/account/deliveries/replay", id="account_replay_deliveries",
    summary="Send now every own delivery since a time that has not gone: failed ones "
            "again, pending ones pulled forward", ok=Replayed,
    ok_description="How many of each",
    parameters=(SINCE, query("endpoint", "Only this endpoint key",
                             {"type": "string", "maxLength": 200})),
    **_ACCOUNT, errors=ACTIVE_ERRORS | SINCE_ERRORS)
async def replay(request: web.Request) -> web.Response:
    sub = active_subscriber(request)
    return json_response(await replayed(request, sub.id))


@routes.operation(
    "get", "/v3/account/webhooks", id="account_webhooks",
    summary="Own webhook endpoints and their health", ok=Endpoints,
    ok_description="Endpoints, never a secret", **_ACCOUNT, errors=SUBSCRIBER_ERRORS)
async def webhooks(request: web.Request) -> web.Response:
    sub = _subscriber(request)
    found = await deliveries_service(request).endpoints(snapshot_of(request).config,
                                                        subscriber_id=sub.id)
    return json_response(Endpoints(endpoints=[Endpoint.of(e) for e in found]))


@routes.operation(
    "post", "/v3/account/webhooks/test", id="account_webhook_test",
    summary="Send a `test` event to each own endpoint", ok=TestsQueued,
    ok_description="The deliveries queued, one per endpoint", **_ACCOUNT,
    errors=ACTIVE_ERRORS | {Error.NO_WEBHOOKS},
    description="Queued and retried like any other delivery, signed as the endpoint's format "
                "says; it reaches the endpoint whatever events it subscribes to.")
async def webhook_test(request: web.Request) -> web.Response:
    sub = active_subscriber(request)
    try:
        drafts = await deliveries_service(request).send_test(
            snapshot_of(request).config, sub.id, time.time())
    except NoEndpoints:
        fail(Error.NO_WEBHOOKS, "this subscription has no webhook endpoint configured")
    return json_response(TestsQueued(queued=[
        QueuedTest(id=d.id, endpoint=QueuedEndpoint(key=d.endpoint_key, url=d.url))
        for d in drafts]))
