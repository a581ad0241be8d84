"""What the dashboard and the portal share: templates, static files, the
small inline SVG charts, and the page frame (session, CSRF token, notices)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup

from bot.store.rules import QUEUED_STATUSES, shown_status
from bot.web.errors import ApiError
from bot.web.ui.session import Sessions, keep_login_csrf, login_csrf, session_request_key

HERE = Path(__file__).parent
STATIC = HERE / "static"


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(seconds: float | None) -> str:
    """A duration as people read it: 42 s, 3 min, 2 h 5 min."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"


# The banners a page shows after an action. The URL names one by its code, with
# its figures as `notice_<name>` parameters of a fixed shape: no text a link
# could carry ("re-enter the admin token at https://evil.example") is shown.
NOTICES = {
    "retry_queued": "Queued again: it is sent in a moment.",
    "retry_pulled": "Pulled forward: it is sent in a moment, not at its next attempt.",
    "retry_in_flight": "This delivery is being sent right now.",
    "replayed": "{count} failed deliveries queued again, {pulled} pending pulled forward.",
    "opted_out": "{number} is opted out on instance {instance}.",
    "test_queued": "A test event is queued for {count} endpoint(s).",
    "no_endpoints": "No webhook endpoint is configured for this subscription.",
    "subscriber_created": "Created. Give it its CLIENT ID and secret below.",
    "subscriber_saved": "Saved.",
    "unchanged": "Nothing to change.",
    "suspended": "Suspended: its sends are refused until it is resumed.",
    "resumed": "Resumed.",
    "subscriber_deleted": "Deleted: its credentials no longer work.",
    "secret_issued": "A new secret is issued.",
    "endpoint_created": "Added. It receives events from now on.",
    "endpoint_saved": "Saved.",
    "signing_secret_issued": "Issued.",
    "endpoint_off": "This endpoint is switched off: switch it on to send it a test event.",
    "endpoint_deleted": "Deleted: it receives no event from now on.",
}
_FIGURES = {"count": re.compile(r"[0-9]{1,9}"), "pulled": re.compile(r"[0-9]{1,9}"),
            "instance": re.compile(r"[0-9]{1,9}"),
            "number": re.compile(r"\+[0-9]{6,15}")}


def notice_url(path: str, code: str, **figures: object) -> str:
    """`path` showing the notice `code` with its figures."""
    assert code in NOTICES
    query = {"notice": code, **{f"notice_{k}": str(v) for k, v in figures.items()}}
    return f"{path}?{urlencode(query)}"


def notice_text(request: web.Request) -> str:
    """The notice the URL names, or "" when it names none, or a figure is not of its shape."""
    template = NOTICES.get(request.query.get("notice", ""))
    if template is None:
        return ""
    figures = {}
    for name in re.findall(r"{(\w+)}", template):
        value = request.query.get(f"notice_{name}", "")
        if not _FIGURES[name].fullmatch(value):
            return ""
        figures[name] = value
    return template.format(**figures)


def overlap_of(fields: Mapping[str, str]) -> Any:
    """The form's overlap in hours as the API takes it (a number; anything
    else as typed, for the service to refuse)."""
    raw = fields.get("overlap_hours", "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        return raw[:20]


def setup_templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=True, undefined=jinja2.StrictUndefined,
                         filters={"when": when, "age": age, "shown_status": shown_status})
    # The store's rule of which statuses are still waiting, not a copy of it.
    aiohttp_jinja2.get_env(app).globals["queued_statuses"] = QUEUED_STATUSES


def render(request: web.Request, template: str, context: Mapping[str, Any],
           status: int = 200) -> web.Response:
    session = request.get(session_request_key)
    return aiohttp_jinja2.render_template(template, request, {
        "session": session, "csrf": session.csrf if session else "",
        "notice": notice_text(request), **context}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page_errors(prefix: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The pages' middleware (under `prefix`): a page that cannot be shown (a
    filter out of its choices, a message that does not exist) answers a page
    at the error's status, with the message, its code and a way back (the page
    unfiltered, or the home page), not the API's JSON. Forms (POSTs) answer as
    they do."""
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            if request.method not in ("GET", "HEAD"):
                raise
            return render(request, "error.html", {
                "prefix": prefix, "title": HTTPStatus(exc.error.status).phrase,
                "message": exc.message, "code": exc.error.slug,
                "back": way_back(request, prefix)}, status=exc.error.status)
    return middleware


def way_back(request: web.Request, prefix: str) -> str:
    """From a page that failed: the page unfiltered when a filter failed, else
    the page above it (a message's list), never outside `prefix`."""
    if request.query_string:
        return request.path
    above = request.path.rsplit("/", 1)[0]
    return above if above.startswith(prefix) else prefix


def login_form(request: web.Request, sessions: Sessions, *, admin: bool) -> web.Response:
    """The login page of the dashboard (admin) or the portal, with its form's
    CSRF token kept in a cookie (there is no session yet)."""
    token = login_csrf(request)
    response = render(request, "login.html", {
        "prefix": sessions.path, "login_csrf": token, "admin": admin,
        "next": sessions.safe_next(request.query.get("next")), "failed": False, "wait": None})
    keep_login_csrf(response, request, token, sessions.path)
    return response


def login_refused(request: web.Request, sessions: Sessions, fields: Mapping[str, str], *,
                  admin: bool, wait: int | None = None) -> web.Response:
    """The login page again after a failed login (401), or one refused because
    the address failed too often (429, with Retry-After)."""
    response = render(request, "login.html", {
        "prefix": sessions.path, "login_csrf": fields["csrf"], "admin": admin,
        "next": sessions.safe_next(fields.get("next")), "failed": wait is None, "wait": wait},
        status=401 if wait is None else 429)
    if wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response


def bars(values: Sequence[int], *, width: int = 240, height: int = 40,
         label: str = "") -> Markup:
    """A bar chart as inline SVG: one bar per value, scaled to the largest.
    Only numbers go into it, so there is nothing to escape but the label."""
    top = max(values, default=0) or 1
    step = width / max(len(values), 1)
    rects = "".join(
        f'<rect x="{i * step:.1f}" y="{height - v / top * height:.1f}" '
        f'width="{max(step - 1, 1):.1f}" height="{v / top * height:.1f}"><title>{v}</title></rect>'
        for i, v in enumerate(values) if v)
    title = Markup.escape(label)
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
                  f'height="{height}" role="img" aria-label="{title}">'
                  f'<line x1="0" y1="{height}" x2="{width}" y2="{height}"/>{rects}</svg>')


async def static_file(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "max-age=300"})
