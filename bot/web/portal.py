"""The subscriber portal at /portal/: log in with the CLIENT ID and secret of
the send API; see one's own quota, recipients, messages, webhook endpoints
and deliveries; retry or replay deliveries; send a test event. Everything is
read and done through the same calls as the /v3/account API."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.config import SubscriberConfig
from bot.services.deliveries import NoEndpoints
from bot.services.subscribers import Actor, Refused
from bot.subscribers import authenticate
from bot.web.account import account_json
from bot.web.auth import failed, throttled
from bot.web.clients import client_address
from bot.web.keys import clock_key, store_key
from bot.web.request_services import deliveries_service, subscribers_service
from bot.web.snapshot import holder_key, snapshot_of
from bot.web.subscribers import PAGE_REFUSALS
from bot.web.ui import endpoints, history
from bot.web.ui.once import forget_once, keep_once, take_once
from bot.web.ui.pages import (
    login_form,
    login_refused,
    notice_url,
    overlap_of,
    page_errors,
    render,
    setup_templates,
)
from bot.web.ui.session import (
    Sessions,
    check_login_csrf,
    form,
    log_out,
    session_middleware,
    session_request_key,
)

log = logging.getLogger("wagate.portal")

SESSIONS = Sessions(role="subscriber", cookie="wagate_portal", path="/portal/")


async def login_page(request: web.Request) -> web.Response:
    return login_form(request, SESSIONS, admin=False)


async def login(request: web.Request) -> web.Response:
    fields = await check_login_csrf(request)
    client_id = fields.get("client_id", "").strip()[:200]
    if (wait := throttled(request, "portal", client_id)) is not None:
        return login_refused(request, SESSIONS, fields, admin=False, wait=wait)
    sub = authenticate(snapshot_of(request).config, client_id, fields.get("secret", "").strip(),
                       request.config_dict[clock_key].now())
    if not client_id or sub is None:
        failed(request, "portal", client_id)
        log.info("portal: failed login for client id %r from %s", client_id[:100],
                 client_address(request))
        return login_refused(request, SESSIONS, fields, admin=False)
    response = web.HTTPSeeOther(SESSIONS.safe_next(fields.get("next")))
    await SESSIONS.open(response, request, sub.id)
    raise response


async def logout(request: web.Request) -> web.Response:
    await log_out(request, SESSIONS, everywhere=False)


async def logout_everywhere(request: web.Request) -> web.Response:
    log.info("portal: %s logged out everywhere from %s", request[session_request_key].subject,
             client_address(request))
    await log_out(request, SESSIONS, everywhere=True)


async def home(request: web.Request) -> web.Response:
    config = snapshot_of(request).config
    sub = config.subscribers[request[session_request_key].subject]
    clock = request.config_dict[clock_key]
    store = request.config_dict[store_key]
    account = await account_json(config, store, sub, clock.now(), clock.today())
    endpoints = await deliveries_service(request).endpoints(config, subscriber_id=sub.id)
    recent = await store.search_outbound(subscriber_id=sub.id, status=None, error_code=None,
                                         instance_id=None, limit=10)
    return render(request, "portal.html", {"prefix": SESSIONS.path, "account": account,
                                           "endpoints": endpoints, "recent": recent})


async def webhook_test(request: web.Request) -> web.Response:
    sub_id = request[session_request_key].subject
    try:
        drafts = await deliveries_service(request).send_test(snapshot_of(request).config,
                                                             sub_id, time.time())
        url = notice_url(SESSIONS.path, "test_queued", count=len(drafts))
    except NoEndpoints:
        url = notice_url(SESSIONS.path, "no_endpoints")
    raise web.HTTPSeeOther(url)


CREDENTIALS = f"{SESSIONS.path}credentials"


def _self_service(sub: SubscriberConfig) -> bool:
    return sub.managed_by == "store" or sub.self_service


async def credentials(request: web.Request) -> web.Response:
    """The [portal](dashboard.md#portal)'s credentials: the CLIENT ID, a new secret's form."""
    sub = snapshot_of(request).config.subscribers[request[session_request_key].subject]
    secret = take_once(request)
    response = render(request, "credentials.html", {
        "prefix": SESSIONS.path, "client_id": sub.client_id, "secret": secret,
        "self_service": _self_service(sub), "error": "",
        "older_secrets": [s.expires_at for s in sub.older_secrets]})
    forget_once(response, request)
    return response


async def rotate(request: web.Request) -> web.Response:
    """Issue oneself a new secret (shown once); the current one keeps working
    the hours given.

    The session goes on under it (a changed secret ends every other session
    of this subscriber)."""
    config = snapshot_of(request).config
    session = request[session_request_key]
    overlap = overlap_of(await form(request))
    try:
        issued = await subscribers_service(request).rotate(
            config, session.subject, overlap,
            Actor(f"subscriber:{session.subject}", client_address(request)))
    except Refused as exc:
        sub = config.subscribers[session.subject]
        return render(request, "credentials.html", {
            "prefix": SESSIONS.path, "client_id": sub.client_id, "secret": None,
            "self_service": _self_service(sub), "error": exc.message,
            "older_secrets": [s.expires_at for s in sub.older_secrets]},
            status=PAGE_REFUSALS[exc.reason].status)
    response = web.HTTPSeeOther(notice_url(CREDENTIALS, "secret_issued"))
    await SESSIONS.close(response, request)
    await SESSIONS.open(response, request, session.subject,
                        request.config_dict[holder_key].current.config)
    keep_once(response, request, CREDENTIALS, issued.secret)
    raise response


def portal_app() -> web.Application:
    app = web.Application(middlewares=[session_middleware(SESSIONS, ("/portal/login",)),
                                       page_errors(SESSIONS.path)])
    setup_templates(app)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_post("/logout/everywhere", logout_everywhere)
    app.router.add_get("/", home)
    app.router.add_post("/webhooks/test", webhook_test)
    app.router.add_get("/credentials", credentials)
    app.router.add_post("/secrets", rotate)
    endpoints.register(app.router, "/webhooks")
    history.register(app.router)
    return app
