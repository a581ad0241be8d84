"""A subscriber's webhook endpoints on the pages: the dashboard's for any
subscriber (/ui/subscribers/{id}/webhooks) and the portal's own
(/portal/webhooks), the same pages at both. List, add, change, switch off,
delete, issue a new signing secret (shown once, the earlier ones signing on
for the overlap), send a test event.

Every change goes through the same service as /v3/account/webhooks and
/admin/subscribers/{id}/webhooks (bot/services/endpoints.py); each endpoint
is shown as those routes show it (`Endpoint.of`). These handlers turn a form
into the API's fields and a refusal (a refused URL, say) into the form again
with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from bot.config import WEBHOOK_EVENTS, Config
from bot.services.deliveries import NoEndpoints
from bot.services.endpoints import FORMATS
from bot.services.subscribers import Actor, Refused
from bot.web.catalog import Error
from bot.web.clients import client_address
from bot.web.deliveries import Endpoint
from bot.web.endpoints import CREATE_REFUSALS, ROTATE_REFUSALS, UPDATE_REFUSALS
from bot.web.errors import fail
from bot.web.request_services import deliveries_service, endpoints_service
from bot.web.snapshot import snapshot_of
from bot.web.ui.once import forget_once, keep_once, take_once
from bot.web.ui.pages import notice_url, overlap_of, render
from bot.web.ui.session import form, form_values, session_request_key

# A refusal shown on a form has the status the API answers it with.
_STATUS = {reason: error.status for reason, error in
           (CREATE_REFUSALS | UPDATE_REFUSALS | ROTATE_REFUSALS).items()}


@dataclass(frozen=True, slots=True)
class Whose:
    """Whose endpoints a page shows, who acts, and where the pages are."""

    subscriber_id: str
    actor: Actor
    base: str  # the list's path: /ui/subscribers/{id}/webhooks or /portal/webhooks
    prefix: str  # the audience's: /ui/ or /portal/


def whose(request: web.Request) -> Whose:
    session = request[session_request_key]
    address = client_address(request)
    if session.role == "subscriber":
        return Whose(session.subject, Actor(f"subscriber:{session.subject}", address),
                     "/portal/webhooks", "/portal/")
    sub_id = request.match_info["id"]
    if sub_id not in snapshot_of(request).config.subscribers:
        fail(Error.UNKNOWN_SUBSCRIBER, f"no subscriber {sub_id[:80]!r}")
    return Whose(sub_id, Actor("admin", address), f"/ui/subscribers/{sub_id}/webhooks", "/ui/")


def form_fields(fields: MultiDictProxy[str], current: Endpoint | None) -> dict[str, Any]:
    """The form as the API's fields: a new endpoint's as given, a change only
    what differs from `current` (a blank description clears it)."""
    raw: dict[str, Any] = {
        "url": str(fields.get("url", "")).strip(),
        "format": str(fields.get("format", "standard")),
        "events": [str(e) for e in fields.getall("events", [])] if "events_shown" in fields
        else None,
        "description": str(fields.get("description", "")).strip() or None}
    if "enabled_shown" in fields:
        raw["enabled"] = "enabled" in fields
    if current is None:
        return {k: v for k, v in raw.items() if v is not None}
    if raw["description"] is None and "description" not in fields:
        del raw["description"]
    was = {"url": current.url, "format": current.format, "events": current.events,
           "description": current.description, "enabled": current.enabled}
    return {k: v for k, v in raw.items()
            if (k in fields or k in ("enabled", "events")) and v != was[k]
            and not (k == "events" and (v is None or sorted(v) == sorted(was[k])))}


async def _listed(request: web.Request, who: Whose) -> list[Endpoint]:
    return [Endpoint.of(e) for e in await deliveries_service(request).endpoints(
        snapshot_of(request).config, subscriber_id=who.subscriber_id)]


def _self_service(request: web.Request, config: Config, who: Whose) -> str:
    """Why this subscriber's endpoints can't be managed here, or ""."""
    try:
        endpoints_service(request).owner(config, who.subscriber_id)
    except Refused as exc:
        return exc.message
    return ""


def _new_values() -> dict[str, Any]:
    return {"url": "", "format": "standard", "events": list(WEBHOOK_EVENTS), "description": "",
            "enabled": True}


async def _list_page(request: web.Request, who: Whose, *, values: Mapping[str, Any] | None = None,
                     error: str = "", status: int = 200) -> web.Response:
    config = snapshot_of(request).config
    return render(request, "endpoints.html", {
        "prefix": who.prefix, "base": who.base, "subscriber_id": who.subscriber_id,
        "endpoints": await _listed(request, who), "refused": _self_service(request, config, who),
        "values": values or _new_values(), "formats": FORMATS, "events": WEBHOOK_EVENTS,
        "error": error}, status=status)


async def endpoints(request: web.Request) -> web.Response:
    """A subscriber's webhook endpoints (the config file's and its own), and a form to add one."""
    return await _list_page(request, whose(request))


def _typed(fields: MultiDictProxy[str]) -> dict[str, Any]:
    """What a refused form had, to show it again."""
    return {"url": fields.get("url", ""), "format": fields.get("format", "standard"),
            "events": fields.getall("events", []), "description": fields.get("description", ""),
            "enabled": "enabled" in fields or "enabled_shown" not in fields}


async def create(request: web.Request) -> web.Response:
    """Add a webhook endpoint (the form); its signing secret is shown once, on its page."""
    who = whose(request)
    fields = await form_values(request)
    try:
        saved = await endpoints_service(request).create(
            snapshot_of(request).config, who.subscriber_id, form_fields(fields, None), who.actor)
    except Refused as exc:
        return await _list_page(request, who, values=_typed(fields), error=exc.message,
                                status=_STATUS[exc.reason])
    return _issued(request, f"{who.base}/{saved.endpoint.id}", "endpoint_created",
                   saved.secret or saved.token)


def _issued(request: web.Request, page: str, notice: str, secret: str | None) -> web.Response:
    response = web.HTTPSeeOther(notice_url(page, notice))
    if secret:
        keep_once(response, request, page, secret)
    raise response


async def _one(request: web.Request, who: Whose) -> Endpoint:
    key = request.match_info["key"][:200]
    found = [e for e in await _listed(request, who) if e.id == key and e.managed_by]
    if not found:
        fail(Error.UNKNOWN_ENDPOINT, f"no webhook endpoint {key[:80]!r} of subscriber "
                                     f"{who.subscriber_id[:80]!r}")
    return found[0]


async def _show(request: web.Request, who: Whose, e: Endpoint, *, error: str = "",
                values: Mapping[str, Any] | None = None, status: int = 200) -> web.Response:
    config = snapshot_of(request).config
    response = render(request, "endpoint.html", {
        "prefix": who.prefix, "base": who.base, "subscriber_id": who.subscriber_id, "e": e,
        "secret": take_once(request), "refused": _self_service(request, config, who),
        "values": values or {"url": e.url, "format": e.format, "events": e.events,
                             "description": e.description or "", "enabled": e.enabled},
        "formats": FORMATS, "events": WEBHOOK_EVENTS, "error": error}, status=status)
    forget_once(response, request)
    return response


async def endpoint(request: web.Request) -> web.Response:
    """One webhook endpoint: its health and signing secrets' times, and its forms."""
    who = whose(request)
    return await _show(request, who, await _one(request, who))


async def _refusal(request: web.Request, who: Whose, exc: Refused,
                   values: Mapping[str, Any] | None = None) -> web.Response:
    """The endpoint's page again, saying why the service refused."""
    return await _show(request, who, await _one(request, who), error=exc.message,
                       values=values, status=_STATUS[exc.reason])


async def update(request: web.Request) -> web.Response:
    """Change a webhook endpoint (the form): only the fields that differ."""
    who = whose(request)
    current = await _one(request, who)
    fields = await form_values(request)
    changes = form_fields(fields, current)
    page = f"{who.base}/{current.id}"
    if not changes:
        raise web.HTTPSeeOther(notice_url(page, "unchanged"))
    try:
        saved = await endpoints_service(request).update(
            snapshot_of(request).config, who.subscriber_id, current.id, changes, who.actor)
    except Refused as exc:
        return await _refusal(request, who, exc, _typed(fields))
    return _issued(request, page, "endpoint_saved", saved.secret or saved.token)


async def rotate(request: web.Request) -> web.Response:
    """Issue a new signing secret (shown once); the earlier ones sign on for the hours given."""
    who = whose(request)
    current = await _one(request, who)
    overlap = overlap_of(await form(request))
    try:
        saved = await endpoints_service(request).rotate(
            snapshot_of(request).config, who.subscriber_id, current.id, overlap, who.actor)
    except Refused as exc:
        return await _refusal(request, who, exc)
    return _issued(request, f"{who.base}/{current.id}", "signing_secret_issued",
                   saved.secret or saved.token)


async def test(request: web.Request) -> web.Response:
    """Send a `test` event to this endpoint."""
    who = whose(request)
    current = await _one(request, who)
    page = f"{who.base}/{current.id}"
    try:
        drafts = await deliveries_service(request).send_test(
            snapshot_of(request).config, who.subscriber_id, time.time(), endpoint_key=current.id)
    except NoEndpoints:
        raise web.HTTPSeeOther(notice_url(page, "endpoint_off")) from None
    raise web.HTTPSeeOther(notice_url(page, "test_queued", count=len(drafts)))


async def delete_form(request: web.Request) -> web.Response:
    """The confirmation before deleting a webhook endpoint."""
    who = whose(request)
    e = await _one(request, who)
    return render(request, "endpoint_delete.html", {"prefix": who.prefix, "base": who.base,
                                                    "e": e})


async def delete(request: web.Request) -> web.Response:
    """Delete a webhook endpoint (its delivery history stays)."""
    who = whose(request)
    current = await _one(request, who)
    await form(request)  # (checked for its CSRF token: nothing else to read)
    try:
        await endpoints_service(request).delete(snapshot_of(request).config,
                                                who.subscriber_id, current.id, who.actor)
    except Refused as exc:
        return await _refusal(request, who, exc)
    raise web.HTTPSeeOther(notice_url(who.base, "endpoint_deleted"))


def register(router: web.UrlDispatcher, base: str) -> None:
    """The pages at `base` (…/webhooks) of the dashboard or the portal."""
    router.add_get(base, endpoints)
    router.add_post(base, create)
    router.add_get(f"{base}/{{key}}", endpoint)
    router.add_post(f"{base}/{{key}}", update)
    router.add_post(f"{base}/{{key}}/secret", rotate)
    router.add_post(f"{base}/{{key}}/test", test)
    router.add_get(f"{base}/{{key}}/delete", delete_form)
    router.add_post(f"{base}/{{key}}/delete", delete)
