"""The admin dashboard at /ui/: log in with the admin token; overview per
instance (live), registrations, messages, webhook deliveries, subscribers."""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from aiohttp import web

from bot.numbers import to_e164
from bot.web.auth import ADMIN_CREDENTIAL, failed, throttled
from bot.web.catalog import Error
from bot.web.clients import client_address
from bot.web.errors import fail
from bot.web.keys import providers_key, store_key, workers_key
from bot.web.notices import problems_of
from bot.web.query import query_choice, query_int, query_limit
from bot.web.request_services import deliveries_service, registrations_service
from bot.web.snapshot import snapshot_of
from bot.web.ui import endpoints, history, subscribers
from bot.web.ui.pages import (
    bars,
    login_form,
    login_refused,
    notice_url,
    page_errors,
    render,
    setup_templates,
    static_file,
)
from bot.web.ui.session import (
    Sessions,
    check_login_csrf,
    form,
    log_out,
    session_middleware,
)

log = logging.getLogger("wagate.ui")

SESSIONS = Sessions(role="admin", cookie="wagate_ui", path="/ui/")
HOUR = 3600.0
BUCKETS = 60  # one bar a minute
REG_STATUSES = ("active", "opted_out")


async def login_page(request: web.Request) -> web.Response:
    return login_form(request, SESSIONS, admin=True)


async def login(request: web.Request) -> web.Response:
    fields = await check_login_csrf(request)
    if (wait := throttled(request, "dashboard", ADMIN_CREDENTIAL)) is not None:
        return login_refused(request, SESSIONS, fields, admin=True, wait=wait)
    expected = snapshot_of(request).config.admin_token.encode()
    given = fields.get("token", "").strip().encode("utf-8", "surrogateescape")
    if not given or not hmac.compare_digest(given, expected):
        failed(request, "dashboard", ADMIN_CREDENTIAL)
        log.warning("dashboard: failed login from %s", client_address(request))
        return login_refused(request, SESSIONS, fields, admin=True)
    response = web.HTTPSeeOther(SESSIONS.safe_next(fields.get("next")))
    await SESSIONS.open(response, request, "admin")
    log.info("dashboard: admin logged in from %s", client_address(request))
    raise response


async def logout(request: web.Request) -> web.Response:
    await log_out(request, SESSIONS, everywhere=False)


async def logout_everywhere(request: web.Request) -> web.Response:
    log.info("dashboard: admin logged out everywhere from %s", client_address(request))
    await log_out(request, SESSIONS, everywhere=True)


# The newest provider notices the overview lists (all at GET /admin/notices).
NOTICES_SHOWN = 10


async def _overview(request: web.Request) -> dict[str, Any]:
    config = snapshot_of(request).config
    store = request.config_dict[store_key]
    now = time.time()
    activity = {a.instance_id: a for a in await store.activity(since=now - HOUR, now=now,
                                                                buckets=BUCKETS)}
    workers = request.config_dict.get(workers_key) or {}
    providers = request.config_dict[providers_key]
    stopped = sorted(name for name, w in workers.items() if not w.running)
    instances = []
    for inst in config.instances.values():
        act = activity.get(inst.id)
        inbound = act.inbound if act else (0,) * BUCKETS
        outbound = act.outbound if act else (0,) * BUCKETS
        provider = providers.get(inst.provider)
        section = provider.config.section if provider else None
        problem = (f"{', '.join(stopped)} worker stopped" if stopped else
                   f"provider {inst.provider} is not available" if provider is None else
                   f"[{section}] is not configured" if provider.config.section_required
                   and section not in config.providers else None)
        instances.append({
            "id": inst.id, "number": inst.number, "provider": inst.provider,
            "owner": inst.owner, "ready": problem is None, "problem": problem,
            "in_last_minute": inbound[-1], "out_last_minute": outbound[-1],
            "in_hour": sum(inbound), "out_hour": sum(outbound),
            "queued": act.queued if act else 0,
            "oldest_age": now - act.oldest_queued_at if act and act.oldest_queued_at else None,
            "chart_in": bars(inbound, label=f"inbound per minute, instance {inst.id}"),
            "chart_out": bars(outbound, label=f"outbound per minute, instance {inst.id}")})
    due = await store.next_delivery_due()
    endpoints = [e for e in await deliveries_service(request).endpoints(config)
                 if e.status != "ok"]
    notices = await store.list_notices(limit=NOTICES_SHOWN)
    return {"prefix": SESSIONS.path, "instances": instances,
            "account_problems": await problems_of(store), "notices": notices,
            "delivery_depth": await store.delivery_queue_depth(),
            "delivery_oldest_age": max(0.0, now - due) if due else None,
            "endpoints": endpoints, "updated": now}


async def overview(request: web.Request) -> web.Response:
    return render(request, "overview.html", await _overview(request))


async def live(request: web.Request) -> web.Response:
    """The overview's changing part, polled by the page every few seconds."""
    return render(request, "_live.html", await _overview(request))


async def registrations(request: web.Request) -> web.Response:
    typed = history.text_filter(request, Error.INVALID_NUMBER, 40)
    # "+34 600-000" finds +34600000...: only the digits (and '+') of what was typed count.
    number = "".join(c for c in typed if c.isdigit() or c == "+") if typed else None
    locale = history.text_filter(request, Error.INVALID_LOCALE, 35)
    status = query_choice(request, Error.INVALID_STATUS, REG_STATUSES)
    rows = await request.config_dict[store_key].search_registrations(
        number=number, locale=locale, status=status, instance_id=query_int(request, "instance"),
        limit=query_limit(request, 200))
    return render(request, "registrations.html", {
        "prefix": SESSIONS.path, "registrations": rows, "statuses": REG_STATUSES,
        "filters": {"number": typed or "", "locale": locale or "", "status": status or ""}})


async def opt_out(request: web.Request) -> web.Response:
    number = to_e164(request.match_info["number"])
    if number is None:
        fail(Error.INVALID_NUMBER, "not a phone number with country code")
    config = snapshot_of(request).config
    raw = (await form(request)).get("instance", "")
    instance = int(raw) if raw.isascii() and raw.isdigit() else None
    if instance not in config.instances:
        fail(Error.UNKNOWN_INSTANCE, f"instance {raw[:20]} is not configured")
    await registrations_service(request).opt_out(config, number, [instance], time.time())
    raise web.HTTPSeeOther(notice_url(f"{SESSIONS.path}registrations", "opted_out",
                                      number=number, instance=instance))


# "/ui" and "/portal" as typed lead to the pages ("/ui/"), as a browser expects.
bare_prefixes = web.RouteTableDef()


@bare_prefixes.get("/ui")
@bare_prefixes.get("/portal")
async def to_slash(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(f"{request.path}/")


def dashboard_app() -> web.Application:
    app = web.Application(middlewares=[session_middleware(SESSIONS, ("/ui/login",
                                                                     "/ui/static/")),
                                       page_errors(SESSIONS.path)])
    setup_templates(app)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_post("/logout", logout)
    app.router.add_post("/logout/everywhere", logout_everywhere)
    app.router.add_get("/", overview)
    app.router.add_get("/live", live)
    app.router.add_get("/registrations", registrations)
    app.router.add_post("/registrations/{number}/opt-out", opt_out)
    subscribers.register(app.router)
    endpoints.register(app.router, "/subscribers/{id}/webhooks")
    history.register(app.router)
    return app
