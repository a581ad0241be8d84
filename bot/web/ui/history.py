"""Pages the dashboard and the portal both have: messages, webhook deliveries,
and the actions on deliveries. Each reads its scope from the session: the
admin sees everything, a subscriber only its own (another's id answers 404,
as a missing one does)."""

from __future__ import annotations

import json
import time

from aiohttp import web

from bot.services.deliveries import DeliveryInFlight, DeliveryNotFound
from bot.web.account import DELIVERY_STATUSES, MESSAGE_STATUSES
from bot.web.catalog import Error
from bot.web.deliveries import parse_since
from bot.web.errors import fail
from bot.web.keys import store_key
from bot.web.query import query_choice, query_int, query_limit
from bot.web.request_services import deliveries_service
from bot.web.snapshot import snapshot_of
from bot.web.ui.pages import notice_url, render
from bot.web.ui.session import form, session_request_key

SNIPPET = 300  # characters of a webhook endpoint's answer shown per attempt


def scope(request: web.Request) -> str | None:
    """The subscriber a page is limited to; None for the admin."""
    session = request[session_request_key]
    return session.subject if session.role == "subscriber" else None


def prefix(request: web.Request) -> str:
    return "/ui/" if scope(request) is None else "/portal/"


def text_filter(request: web.Request, error: Error, max_len: int = 200) -> str | None:
    """The query parameter `error` names (`invalid_locale`: `locale`)."""
    name = error.slug.removeprefix("invalid_")
    value = request.query.get(name, "").strip() or None
    if value is not None and len(value) > max_len:
        fail(error, f"{name} is too long")
    return value


async def messages(request: web.Request) -> web.Response:
    sub = scope(request)
    subscriber = sub or text_filter(request, Error.INVALID_SUBSCRIBER)
    status = query_choice(request, Error.INVALID_STATUS, MESSAGE_STATUSES)
    error_code = query_int(request, "error_code")
    direction = query_choice(request, Error.INVALID_DIRECTION, ("in", "out"))
    instance = query_int(request, "instance")
    limit = query_limit(request, 200)
    store = request.config_dict[store_key]
    rows = [] if direction == "in" else await store.search_outbound(
        subscriber_id=subscriber, status=status, error_code=error_code, instance_id=instance,
        limit=limit)
    inbound = []
    if sub is None and direction != "out" and not (subscriber or status or error_code):
        # The admin's unfiltered view has both directions: inbound from the log.
        inbound = await store.list_messages(direction="in", instance_id=instance, number=None,
                                            limit=limit)
    return render(request, "messages.html", {
        "prefix": prefix(request), "outbound": rows, "inbound": inbound[::-1],
        "statuses": MESSAGE_STATUSES,
        "filters": {"subscriber": subscriber or "", "status": status or "",
                    "error_code": "" if error_code is None else error_code,
                    "direction": request.query.get("direction", "")}})


async def message(request: web.Request) -> web.Response:
    store = request.config_dict[store_key]
    row = await store.get_outbound(request.match_info["id"][:100])
    sub = scope(request)
    if row is None or (sub is not None and row.subscriber_id != sub):
        fail(Error.MESSAGE_NOT_FOUND, "no such message")
    instance = snapshot_of(request).config.instances.get(row.instance_id)
    return render(request, "message.html", {"prefix": prefix(request), "m": row,
                                            "instance": instance,
                                            "history": await store.status_history(row.id)})


async def deliveries(request: web.Request) -> web.Response:
    sub = scope(request)
    subscriber = sub or text_filter(request, Error.INVALID_SUBSCRIBER)
    status = query_choice(request, Error.INVALID_STATUS, DELIVERY_STATUSES)
    endpoint = text_filter(request, Error.INVALID_ENDPOINT)
    rows = await request.config_dict[store_key].list_deliveries(
        status=status, subscriber_id=subscriber, endpoint_key=endpoint,
        limit=query_limit(request, 200))
    return render(request, "deliveries.html", {
        "prefix": prefix(request), "deliveries": rows, "statuses": DELIVERY_STATUSES,
        "filters": {"subscriber": subscriber or "", "status": status or "",
                    "endpoint": endpoint or ""}})


async def delivery(request: web.Request) -> web.Response:
    try:
        row, attempts = await deliveries_service(request).show(
            request.match_info["id"], subscriber_id=scope(request))
    except DeliveryNotFound:
        fail(Error.UNKNOWN_DELIVERY, "no such delivery")
    try:
        payload = json.dumps(json.loads(row.payload), indent=2, ensure_ascii=False)
    except ValueError:
        payload = row.payload
    return render(request, "delivery.html", {
        "prefix": prefix(request), "d": row, "attempts": attempts, "payload": payload,
        "snippet": SNIPPET})


async def retry(request: web.Request) -> web.Response:
    delivery_id = request.match_info["id"][:200]
    try:
        pulled, _ = await deliveries_service(request).retry(delivery_id, time.time(),
                                                            subscriber_id=scope(request))
        notice = "retry_pulled" if pulled else "retry_queued"
    except DeliveryNotFound:
        fail(Error.UNKNOWN_DELIVERY, "no such delivery")
    except DeliveryInFlight:
        notice = "retry_in_flight"
    raise web.HTTPSeeOther(notice_url(f"{prefix(request)}deliveries/{delivery_id}", notice))


async def replay(request: web.Request) -> web.Response:
    fields = await form(request)
    since = parse_since(fields.get("since", "").strip())
    sub = scope(request)
    subscriber = sub or (fields.get("subscriber", "").strip()[:200] or None)
    count, pulled = await deliveries_service(request).replay(since, time.time(),
                                                             subscriber_id=subscriber)
    raise web.HTTPSeeOther(notice_url(f"{prefix(request)}deliveries", "replayed", count=count,
                                      pulled=pulled))


def register(router: web.UrlDispatcher) -> None:
    """The shared pages, at the same paths under /ui/ and /portal/."""
    router.add_get("/messages", messages)
    router.add_get("/messages/{id}", message)
    router.add_get("/deliveries", deliveries)
    router.add_post("/deliveries/replay", replay)
    router.add_get("/deliveries/{id}", delivery)
    router.add_post("/deliveries/{id}/retry", retry)

