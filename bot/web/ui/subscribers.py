"""The dashboard's subscribers: the list (the config file's, read-only, and
the ones managed here), one subscriber's page, and the forms that create,
change, suspend, resume and delete a managed one and issue it a new secret.

Every change goes through the same service as /admin/subscribers
(bot/services/subscribers.py): these handlers only turn a form into the
fields the API takes, and a refusal into the form again with its reason.
A secret issued here is shown once, on the page the form leads to (once.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from bot.config import Config, SubscriberConfig
from bot.services.subscribers import Actor, Refused
from bot.web.account import account_json
from bot.web.catalog import Error
from bot.web.clients import client_address
from bot.web.errors import fail
from bot.web.keys import clock_key, store_key
from bot.web.request_services import subscribers_service
from bot.web.snapshot import snapshot_of
from bot.web.subscribers import PAGE_REFUSALS, audit_entries
from bot.web.ui.once import forget_once, keep_once, take_once
from bot.web.ui.pages import notice_url, overlap_of, render
from bot.web.ui.session import form, form_values

PREFIX = "/ui/"
TEXT_FIELDS = ("keyword", "email", "name")
AUDIT_SHOWN = 20  # a subscriber's page lists its latest changes; the rest at /ui/audit


def admin(request: web.Request) -> Actor:
    return Actor("admin", client_address(request))


def page_of(subscriber_id: str) -> str:
    return f"{PREFIX}subscribers/{subscriber_id}"


def _instances(values: list[str]) -> list[Any]:
    """Checked instance ids as numbers (anything else as given: the service says why not)."""
    return [int(v) if v.isascii() and v.isdigit() and len(v) < 10 else v for v in values]


def form_fields(fields: MultiDictProxy[str], current: SubscriberConfig | None
                ) -> dict[str, Any]:
    """The form as the API's fields: a new subscriber's as given (blanks
    left out); a change: only what differs from `current` (a blank clears)."""
    text = {name: str(fields.get(name, "")).strip() for name in
            ("id", "plan", "since", "expires", *TEXT_FIELDS)}
    instances = _instances([str(v) for v in fields.getall("instances", [])])
    if current is None:
        raw: dict[str, Any] = {k: v for k, v in text.items() if v}
        raw["instances"] = instances
        return raw
    was = {"plan": current.plan, "since": current.since.isoformat(),
           "expires": current.expires.isoformat() if current.expires else None,
           **{name: getattr(current, name) for name in TEXT_FIELDS}}
    changes: dict[str, Any] = {name: text[name] or None for name in was
                               if name in fields and (text[name] or None) != was[name]}
    if changes.get("since", "") is None:
        del changes["since"]  # a blank start keeps the one it has
    if "instances_shown" in fields and instances != list(current.instances):
        changes["instances"] = instances
    return changes


def _row(sub: SubscriberConfig) -> dict[str, Any]:
    return {"id": sub.id, "managed": sub.managed_by == "store", "client_id": sub.client_id,
            "plan": sub.plan, "since": sub.since, "expires": sub.expires,
            "instances": sub.instances, "keyword": sub.keyword, "email": sub.email,
            "name": sub.name, "suspended": sub.suspended, "webhooks": len(sub.webhooks),
            "self_service": sub.self_service,
            "older_secrets": [s.expires_at for s in sub.older_secrets]}


async def _account(request: web.Request, config: Config, sub: SubscriberConfig
                   ) -> dict[str, Any]:
    clock = request.config_dict[clock_key]
    return await account_json(config, request.config_dict[store_key], sub, clock.now(),
                              clock.today())


async def subscribers(request: web.Request) -> web.Response:
    """The [dashboard](dashboard.md#dashboard)'s subscribers: the config file's and the
    managed ones."""
    config = snapshot_of(request).config
    rows = [{**_row(sub), "account": await _account(request, config, sub)}
            for sub in config.subscribers.values()]
    rows.sort(key=lambda r: (r["managed"], r["id"]))
    return render(request, "subscribers.html", {"prefix": PREFIX, "subscribers": rows})


def _form_context(config: Config, values: Mapping[str, Any], error: str = "") -> dict[str, Any]:
    return {"prefix": PREFIX, "plans": sorted(config.plans),
            "instances": sorted(config.instances.values(), key=lambda i: i.id),
            "values": values, "error": error}


def _new_values(config: Config, today: dt.date) -> dict[str, Any]:
    return {"id": "", "plan": "trial" if "trial" in config.plans else "", "since":
            today.isoformat(), "expires": "", "instances": [], "keyword": "", "email": "",
            "name": ""}


async def new_form(request: web.Request) -> web.Response:
    """The dashboard's form for a new managed subscriber."""
    config = snapshot_of(request).config
    return render(request, "subscriber_new.html", _form_context(
        config, _new_values(config, request.config_dict[clock_key].today())))


def _refused_status(exc: Refused) -> int:
    return PAGE_REFUSALS[exc.reason].status  # as the API answers it


async def create(request: web.Request) -> web.Response:
    """Create a managed subscriber (the form); its secret is shown once, on its page."""
    config = snapshot_of(request).config
    fields = await form_values(request)
    try:
        issued = await subscribers_service(request).create(config, form_fields(fields, None),
                                                           admin(request))
    except Refused as exc:
        values = {**_new_values(config, request.config_dict[clock_key].today()),
                  **{k: str(fields.get(k, "")) for k in ("id", "plan", "since", "expires",
                                                         *TEXT_FIELDS)},
                  "instances": _instances([str(v) for v in fields.getall("instances", [])])}
        return render(request, "subscriber_new.html", _form_context(config, values, exc.message),
                      status=_refused_status(exc))
    page = page_of(issued.subscriber.id)
    response = web.HTTPSeeOther(notice_url(page, "subscriber_created"))
    keep_once(response, request, page, issued.secret)
    raise response


def _subscriber(config: Config, subscriber_id: str) -> SubscriberConfig:
    sub = config.subscribers.get(subscriber_id)
    if sub is None:
        fail(Error.UNKNOWN_SUBSCRIBER, f"no subscriber {subscriber_id[:80]!r}")
    return sub


async def _show(request: web.Request, sub: SubscriberConfig, *, error: str = "",
                values: Mapping[str, Any] | None = None, status: int = 200) -> web.Response:
    config = snapshot_of(request).config
    secret = take_once(request)
    audit = await request.config_dict[store_key].list_audit(target=sub.id, limit=AUDIT_SHOWN)
    shown = values or {**_row(sub), "since": sub.since.isoformat(),
                       "expires": sub.expires.isoformat() if sub.expires else ""}
    response = render(request, "subscriber.html", {
        **_form_context(config, shown, error), "s": _row(sub),
        "account": await _account(request, config, sub), "secret": secret, "audit": audit,
        "file": config.path or "the config file"}, status=status)
    forget_once(response, request)
    return response


async def subscriber(request: web.Request) -> web.Response:
    """The dashboard's page of one subscriber: its facts, forms and latest changes."""
    config = snapshot_of(request).config
    return await _show(request, _subscriber(config, request.match_info["id"]))


async def _refusal(request: web.Request, sub: SubscriberConfig, exc: Refused) -> web.Response:
    """The subscriber's page again, saying why the service refused."""
    if exc.reason == "not_found":
        fail(Error.UNKNOWN_SUBSCRIBER, exc.message)
    return await _show(request, sub, error=exc.message, status=_refused_status(exc))


def _target(request: web.Request) -> tuple[Config, SubscriberConfig]:
    config = snapshot_of(request).config
    return config, _subscriber(config, request.match_info["id"])


async def update(request: web.Request) -> web.Response:
    """Change a managed subscriber (the form): only the fields that differ."""
    config, sub = _target(request)
    changes = form_fields(await form_values(request), sub)
    if not changes:
        raise web.HTTPSeeOther(notice_url(page_of(sub.id), "unchanged"))
    try:
        await subscribers_service(request).update(config, sub.id, changes, admin(request))
    except Refused as exc:
        return await _refusal(request, sub, exc)
    raise web.HTTPSeeOther(notice_url(page_of(sub.id), "subscriber_saved"))


async def _suspend(request: web.Request, suspended: bool) -> web.Response:
    config, sub = _target(request)
    try:
        await subscribers_service(request).suspend(config, sub.id, suspended, admin(request))
    except Refused as exc:
        return await _refusal(request, sub, exc)
    raise web.HTTPSeeOther(notice_url(page_of(sub.id), "suspended" if suspended
                                      else "resumed"))


async def suspend(request: web.Request) -> web.Response:
    """Suspend a managed subscriber: its sends are refused until resumed."""
    return await _suspend(request, True)


async def resume(request: web.Request) -> web.Response:
    """Resume a suspended managed subscriber."""
    return await _suspend(request, False)


async def delete_form(request: web.Request) -> web.Response:
    """The dashboard's confirmation before deleting a managed subscriber."""
    _, sub = _target(request)
    return render(request, "subscriber_delete.html", {"prefix": PREFIX, "s": _row(sub),
                                                      "error": ""})


async def delete(request: web.Request) -> web.Response:
    """Delete a managed subscriber, once its id is typed to confirm."""
    config, sub = _target(request)
    if (await form(request)).get("confirm", "").strip() != sub.id:
        return render(request, "subscriber_delete.html", {
            "prefix": PREFIX, "s": _row(sub), "error": "Type the subscriber's id to confirm."},
            status=400)
    try:
        await subscribers_service(request).delete(config, sub.id, admin(request))
    except Refused as exc:
        return await _refusal(request, sub, exc)
    raise web.HTTPSeeOther(notice_url(f"{PREFIX}subscribers", "subscriber_deleted"))


async def rotate(request: web.Request) -> web.Response:
    """Issue a subscriber a new secret (shown once); the current one keeps
    working the hours given."""
    config, sub = _target(request)
    overlap = overlap_of(await form(request))
    try:
        issued = await subscribers_service(request).rotate(config, sub.id, overlap,
                                                           admin(request))
    except Refused as exc:
        return await _refusal(request, sub, exc)
    page = page_of(sub.id)
    response = web.HTTPSeeOther(notice_url(page, "secret_issued"))
    keep_once(response, request, page, issued.secret)
    raise response


AUDIT_PAGE = 50


async def audit(request: web.Request) -> web.Response:
    """The dashboard's audit log: filtered as /admin/audit, newest first, 50 a page."""
    rows, next_before = await audit_entries(request, AUDIT_PAGE)
    filters = {name: request.query.get(name, "") for name in ("actor", "target", "since")}
    older = None if next_before is None else f"{PREFIX}audit?" + urlencode(
        {**{k: v for k, v in filters.items() if v}, "before": next_before})
    return render(request, "audit.html", {"prefix": PREFIX, "audit": rows, "older": older,
                                          "filters": filters})


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/audit", audit)
    router.add_get("/subscribers", subscribers)
    router.add_get("/subscribers/new", new_form)
    router.add_post("/subscribers", create)
    router.add_get("/subscribers/{id}", subscriber)
    router.add_post("/subscribers/{id}", update)
    router.add_post("/subscribers/{id}/suspend", suspend)
    router.add_post("/subscribers/{id}/resume", resume)
    router.add_get("/subscribers/{id}/delete", delete_form)
    router.add_post("/subscribers/{id}/delete", delete)
    router.add_post("/subscribers/{id}/secrets", rotate)
