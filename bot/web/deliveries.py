"""The admin API of webhook deliveries and endpoints (Bearer token).

GET  /admin/deliveries                   ?status=&subscriber=&endpoint=&limit=
GET  /admin/deliveries/{id}              one delivery with every attempt
POST /admin/deliveries/{id}/retry        send it now (same webhook-id): again, or pulled forward
POST /admin/deliveries/replay            ?since=ISO-or-epoch [&subscriber=&endpoint=]
GET  /admin/endpoints                    every endpoint: configured, failing, disabled
POST /admin/endpoints/{key}/enable       [?subscriber=] enable a disabled endpoint
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, get_args

from aiohttp import web

from bot.services.deliveries import DeliveryInFlight, DeliveryNotFound, EndpointStatus
from bot.store.models import AttemptRow, DeliveryRow
from bot.web.auth import ADMIN_ERRORS, require_admin
from bot.web.catalog import Error
from bot.web.errors import fail
from bot.web.keys import store_key
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
from bot.web.query import QUERY_ERRORS, query_choice, query_limit
from bot.web.request_services import deliveries_service
from bot.web.row_json import iso, iso_time
from bot.web.snapshot import snapshot_of

log = logging.getLogger("wagate.admin")

routes = ApiRoutes()

DeliveryStatus = Literal["pending", "delivered", "failed"]
_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)
MAX_SINCE = 253402300799.0  # 9999-12-31T23:59:59Z


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointRef:
    key: str
    url: str
    format: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    id: str
    subscriber: str
    endpoint: EndpointRef
    type: Annotated[str, doc("Event type")]
    status: DeliveryStatus
    attempts: int
    next_attempt_at: Annotated[MaybeTime, doc(
        "Only while pending: when it is sent next (a retry pulls it forward to now)")]
    last_status_code: int | None
    last_error: str | None
    created_at: Time
    updated_at: Time
    delivered_at: MaybeTime

    @classmethod
    def of(cls, d: DeliveryRow) -> Delivery:
        return cls(id=d.id, subscriber=d.subscriber_id,
                   endpoint=EndpointRef(key=d.endpoint_key, url=d.url, format=d.format),
                   type=d.event_type, status=d.status,  # type: ignore[arg-type]
                   attempts=d.attempts,
                   next_attempt_at=iso(d.next_attempt_at) if d.status == "pending" else None,
                   last_status_code=d.last_status_code, last_error=d.last_error,
                   created_at=iso_time(d.created_at), updated_at=iso_time(d.updated_at),
                   delivered_at=iso(d.delivered_at))


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    at: Time
    outcome: Literal["delivered", "retry", "failed", "disabled", "refused"]
    status_code: int | None
    latency_ms: float | None
    response_body: str | None
    error: str | None

    @classmethod
    def of(cls, a: AttemptRow) -> Attempt:
        return cls(at=iso_time(a.at), outcome=a.outcome,  # type: ignore[arg-type]
                   status_code=a.status_code, latency_ms=a.latency_ms,
                   response_body=a.response_body, error=a.error)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryDetail(Delivery):
    payload: Annotated[Any, doc("The event sent (JSON, or the raw text)")]
    attempt_log: list[Attempt]

    @classmethod
    def with_attempts(cls, d: DeliveryRow, attempts: list[AttemptRow]) -> DeliveryDetail:
        try:
            payload = json.loads(d.payload)
        except ValueError:
            payload = d.payload
        return cls(**{f.name: getattr(Delivery.of(d), f.name) for f in fields(Delivery)},
                   payload=payload, attempt_log=[Attempt.of(a) for a in attempts])


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """A signing secret's times, never the secret."""

    created_at: Annotated[MaybeTime, doc("null: set in the config file")]
    expires_at: Annotated[MaybeTime, doc(
        "When it stops signing (a rotation's overlap); null: the current one")]


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    id: Annotated[str, doc("The endpoint's id in /v3/account/webhooks/{id} (its key)")]
    subscriber: str
    key: str
    url: Annotated[str | None, doc("Without a broker's password")]
    format: str | None
    managed_by: Annotated[Literal["config", "store"] | None, doc(
        "config: set in the config file (change it there); store: kept in the store "
        "(/v3/account/webhooks); null: no longer configured")]
    events: list[str]
    enabled: Annotated[bool, doc("Receives events (false: switched off by its owner)")]
    description: str | None
    created_at: Annotated[MaybeTime, doc("null: set in the config file")]
    updated_at: MaybeTime
    signing_keys: Annotated[list[SigningKey], doc(
        "format standard: when each signing secret in force was issued and stops signing "
        "(never the secret), oldest first: two or more during a rotation's overlap")]
    configured: Annotated[bool, doc("In the config in force")]
    status: Literal["ok", "failing", "disabled"]
    failing_since: MaybeTime
    last_success_at: MaybeTime
    last_failure_at: MaybeTime
    disabled_at: MaybeTime
    disabled_reason: str | None
    pending: int
    failed: int

    @classmethod
    def of(cls, e: EndpointStatus) -> Endpoint:
        health, hook, stored = e.health, e.hook, e.stored
        if stored is not None:
            keys = [SigningKey(created_at=iso_time(k.created_at), expires_at=iso(k.expires_at))
                    for k in stored.secrets]
        elif hook is not None and hook.secret:
            keys = [SigningKey(created_at=None, expires_at=iso(k.until))
                    for k in hook.earlier_secrets] + [SigningKey(created_at=None, expires_at=None)]
        else:
            keys = []
        return cls(id=e.key, subscriber=e.subscriber_id, key=e.key, url=e.url, format=e.format,
                   managed_by=None if hook is None else "store" if stored else "config",
                   events=sorted(hook.events) if hook else [],
                   enabled=stored.enabled if stored else hook is not None,
                   description=stored.description if stored else None,
                   created_at=iso(stored.created_at) if stored else None,
                   updated_at=iso(stored.updated_at) if stored else None,
                   signing_keys=keys,
                   configured=e.configured, status=e.status,  # type: ignore[arg-type]
                   failing_since=iso(health.failing_since) if health else None,
                   last_success_at=iso(health.last_success_at) if health else None,
                   last_failure_at=iso(health.last_failure_at) if health else None,
                   disabled_at=iso(health.disabled_at) if health else None,
                   disabled_reason=health.disabled_reason if health else None,
                   pending=health.pending if health else 0,
                   failed=health.failed if health else 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliveries:
    deliveries: list[Delivery]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryShown:
    delivery: DeliveryDetail


@dataclass(frozen=True, slots=True, kw_only=True)
class Retried:
    delivery: Delivery
    retry: Annotated[Literal["queued_again", "pulled_forward"], doc(
        "queued_again: it had failed (or was delivered), it goes again with a fresh retry "
        "schedule; pulled_forward: it was pending, waiting for its next attempt, and is due "
        "now, its schedule kept")]


@dataclass(frozen=True, slots=True, kw_only=True)
class Replayed:
    replayed: Annotated[int, doc("Failed deliveries queued again")]
    pulled_forward: Annotated[int, doc(
        "Pending deliveries that were waiting for their next attempt, due now")]
    since: Time


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoints:
    endpoints: list[Endpoint]


@dataclass(frozen=True, slots=True, kw_only=True)
class Enabled:
    key: str
    enabled: int


# The parameters and errors the admin and account routes share.
DELIVERY_ID = path_param("id", "Delivery id (also the webhook-id header sent)")
SUBSCRIBER = query("subscriber", "Only this subscriber id (at most 200 characters)",
                   {"type": "string", "maxLength": 200})
ENDPOINT = query("endpoint", "Only this endpoint key (at most 200 characters)",
                 {"type": "string", "maxLength": 200})
SINCE = query("since", "ISO 8601 (a date, or a time; UTC unless it says) or epoch seconds, "
              "1970 to 9999", {"type": "string", "examples": ["2026-11-01T10:00:00Z",
                                                              "1793527200"]}, required=True)
STATUS = query("status", "Only this status", {"enum": list(_STATUSES)})
SINCE_ERRORS = frozenset({Error.MISSING_SINCE, Error.INVALID_SINCE, Error.INVALID_ENDPOINT})
_ADMIN = {"tag": "deliveries", "security": "admin"}


def _text(request: web.Request, error: Error, max_len: int = 200) -> str | None:
    """The query parameter `error` names (`invalid_endpoint`: `endpoint`)."""
    name = error.slug.removeprefix("invalid_")
    value = request.query.get(name) or None
    if value is not None and len(value) > max_len:
        fail(error, f"{name} is too long")
    return value


def parse_since(raw: str | None) -> float:
    """`since` as epoch seconds or ISO 8601 (a date, or a time; UTC unless it says)."""
    if not raw:
        fail(Error.MISSING_SINCE, "since is required: ISO 8601 (2026-11-01T10:00:00Z) or "
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
            fail(Error.INVALID_SINCE,
                 f"since {raw[:60]!r} is neither ISO 8601 nor epoch seconds")
    # NaN, infinities and years datetime cannot show (before 1970, after 9999).
    if not 0 <= since <= MAX_SINCE:
        fail(Error.INVALID_SINCE, f"since {raw[:60]!r} is out of range (1970 to 9999)")
    return since


@routes.operation(
    "get", "/admin/deliveries", id="list_deliveries",
    summary="List webhook deliveries, newest first", ok=Deliveries, ok_description="Deliveries",
    parameters=(STATUS, SUBSCRIBER, ENDPOINT, LIMIT), **_ADMIN,
    errors=ADMIN_ERRORS | QUERY_ERRORS | {Error.INVALID_STATUS, Error.INVALID_SUBSCRIBER,
                                          Error.INVALID_ENDPOINT})
async def list_deliveries(request: web.Request) -> web.Response:
    require_admin(request)
    status = query_choice(request, Error.INVALID_STATUS, _STATUSES)
    limit = query_limit(request)
    rows = await request.app[store_key].list_deliveries(
        status=status, subscriber_id=_text(request, Error.INVALID_SUBSCRIBER),
        endpoint_key=_text(request, Error.INVALID_ENDPOINT), limit=limit)
    return json_response(Deliveries(deliveries=[Delivery.of(d) for d in rows]))


@routes.operation(
    "get", "/admin/deliveries/{id}", summary="One delivery with its payload and every attempt",
    ok=DeliveryShown, ok_description="The delivery", parameters=(DELIVERY_ID,), **_ADMIN,
    errors=ADMIN_ERRORS | {Error.UNKNOWN_DELIVERY})
async def show_delivery(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response(await shown_delivery(request, None))


async def shown_delivery(request: web.Request, subscriber_id: str | None) -> DeliveryShown:
    """The delivery with the payload and every attempt; 404 for a delivery that
    does not exist or (for a subscriber) is another's."""
    try:
        delivery, attempts = await deliveries_service(request).show(
            request.match_info["id"], subscriber_id=subscriber_id)
    except DeliveryNotFound:
        fail(Error.UNKNOWN_DELIVERY, "no such delivery")
    return DeliveryShown(delivery=DeliveryDetail.with_attempts(delivery, attempts))


@routes.operation(
    "post", "/admin/deliveries/replay", id="replay_deliveries",
    summary="Send now every delivery since a time that has not gone: failed ones again, "
            "pending ones pulled forward", ok=Replayed,
    ok_description="How many of each", parameters=(SINCE, SUBSCRIBER, ENDPOINT),
    **_ADMIN, errors=ADMIN_ERRORS | SINCE_ERRORS | {Error.INVALID_SUBSCRIBER})
async def replay(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response(await replayed(request, _text(request, Error.INVALID_SUBSCRIBER)))


async def replayed(request: web.Request, subscriber_id: str | None) -> Replayed:
    since = parse_since(request.query.get("since"))
    replayed, pulled = await deliveries_service(request).replay(
        since, time.time(), subscriber_id=subscriber_id,
        endpoint_key=_text(request, Error.INVALID_ENDPOINT))
    return Replayed(replayed=replayed, pulled_forward=pulled, since=iso_time(since))


@routes.operation(
    "post", "/admin/deliveries/{id}/retry", id="retry_delivery",
    summary="Send a delivery now (same webhook-id): a failed one again, a pending one "
            "pulled forward", ok=Retried,
    ok_description="The delivery, and what the retry did", parameters=(DELIVERY_ID,), **_ADMIN,
    errors=ADMIN_ERRORS | {Error.UNKNOWN_DELIVERY, Error.ALREADY_PENDING})
async def retry(request: web.Request) -> web.Response:
    require_admin(request)
    return json_response(await retried(request, None))


async def retried(request: web.Request, subscriber_id: str | None) -> Retried:
    try:
        pulled, row = await deliveries_service(request).retry(
            request.match_info["id"], time.time(), subscriber_id=subscriber_id)
    except DeliveryNotFound:
        fail(Error.UNKNOWN_DELIVERY, "no such delivery")
    except DeliveryInFlight:
        fail(Error.ALREADY_PENDING, "this delivery is being sent right now; its outcome "
             "shows in a moment")
    return Retried(delivery=Delivery.of(row),
                   retry="pulled_forward" if pulled else "queued_again")


@routes.operation(
    "get", "/admin/endpoints", id="list_endpoints",
    summary="Every webhook endpoint: configured, failing, disabled", ok=Endpoints,
    ok_description="Endpoints, never a secret", **_ADMIN, errors=ADMIN_ERRORS)
async def endpoints(request: web.Request) -> web.Response:
    """Every configured webhook and every endpoint with a history, never a secret."""
    require_admin(request)
    found = await deliveries_service(request).endpoints(snapshot_of(request).config)
    return json_response(Endpoints(endpoints=[Endpoint.of(e) for e in found]))


@routes.operation(
    "post", "/admin/endpoints/{key}/enable", id="enable_endpoint",
    summary="Enable a disabled webhook endpoint again", ok=Enabled,
    ok_description="How many endpoint records were enabled",
    parameters=(path_param("key", "Endpoint key (the first 64 characters count)"),
                query("subscriber", "Only this subscriber's endpoint",
                      {"type": "string", "maxLength": 200})),
    **_ADMIN, errors=ADMIN_ERRORS | {Error.INVALID_SUBSCRIBER, Error.UNKNOWN_ENDPOINT})
async def enable(request: web.Request) -> web.Response:
    require_admin(request)
    key = request.match_info["key"][:64]
    subscriber = _text(request, Error.INVALID_SUBSCRIBER)
    store = request.app[store_key]
    known = any(h.endpoint_key == key and (subscriber is None or h.subscriber_id == subscriber)
                for h in await store.list_endpoint_health()) or any(
        hook.key == key for sub in snapshot_of(request).config.subscribers.values()
        if subscriber is None or sub.id == subscriber for hook in sub.webhooks)
    if not known:
        fail(Error.UNKNOWN_ENDPOINT, f"no webhook endpoint {key}")
    count = await store.enable_endpoint(key, subscriber)
    if count:
        log.warning("admin: webhook endpoint %s enabled again", key)
    return json_response(Enabled(key=key, enabled=count))
