"""Browser sessions for the dashboard and the portal.

A session is recorded in the store; the browser's cookie holds only its
random key (the store keeps the key's SHA-256). So logging out, "log out
everywhere" and expiry end it at once in every process sharing the store, and
a cookie replayed afterwards opens nothing. A session names its role, its
subject, when it ends (8 hours on), its forms' CSRF token, and a fingerprint
of the credential it was opened with: changing the admin token or a
subscriber's secret ends the sessions opened with the old one. The cookie is
HttpOnly and SameSite=Strict, Secure when the browser came over https
(`bot/web/clients.py`: TLS here, a trusted proxy's word, an https public_url).

Every POST is checked twice: its CSRF token (the session's; on the login
form, a token this server signed, kept in a cookie) and its Origin, which
must be this service's own host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, NoReturn
from urllib.parse import quote, urlsplit

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from bot.config import Config
from bot.store.models import WebSession
from bot.web.catalog import Error
from bot.web.clients import is_https, public_host
from bot.web.errors import fail
from bot.web.keys import clock_key, store_key
from bot.web.snapshot import snapshot_of

Role = Literal["admin", "subscriber"]
SESSION_SECONDS = 8 * 3600.0
LOGIN_CSRF_COOKIE = "wagate_login"
MAX_KEY = 100  # a session cookie's key is 43 characters; anything much longer is not one

# Pages are for people: never cached, never framed, nothing loaded from elsewhere.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    role: Role
    subject: str  # "admin", or the subscriber id
    expires: float
    csrf: str
    credential: str
    key_hash: str  # the store's name for it


session_request_key = web.RequestKey("session", Session)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def credential_fingerprint(config: Config, role: Role, subject: str) -> str | None:
    """What a session must still match: None when the subject is gone."""
    if role == "admin":
        material = config.admin_token.encode()
    else:
        sub = config.subscribers.get(subject)
        if sub is None:
            return None
        material = sub.client_id.encode() + b"\0" + sub.secret_sha256
    return hashlib.sha256(b"wagate session credential\0" + material).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Sessions:
    """The sessions of one audience: its role, cookie and pages."""

    role: Role
    cookie: str
    path: str  # the sub-app's prefix, "/ui/"

    async def open(self, response: web.StreamResponse, request: web.Request,
                   subject: str, config: Config | None = None) -> None:
        """A new session for `subject`, bound to its credential in `config`
        (default: the request's)."""
        config = config or snapshot_of(request).config
        fingerprint = credential_fingerprint(config, self.role, subject)
        assert fingerprint is not None
        key = secrets.token_urlsafe(32)
        now = request.config_dict[clock_key].now()
        await request.config_dict[store_key].open_session(WebSession(
            key_hash=_key_hash(key), role=self.role, subject=subject, credential=fingerprint,
            csrf=secrets.token_urlsafe(24), created_at=now, expires_at=now + SESSION_SECONDS),
            now)
        response.set_cookie(self.cookie, key, path=self.path, httponly=True, samesite="Strict",
                            secure=is_https(request), max_age=int(SESSION_SECONDS))

    async def close(self, response: web.StreamResponse, request: web.Request) -> None:
        """End the request's session (in the store: its cookie opens nothing after)."""
        session = request.get(session_request_key)
        if session is not None:
            await request.config_dict[store_key].end_session(session.key_hash)
        response.del_cookie(self.cookie, path=self.path)

    async def read(self, request: web.Request) -> Session | None:
        """The request's session, or None when there is none, it has ended or
        was ended, it is another audience's, or its credential changed."""
        key = request.cookies.get(self.cookie, "")
        if not 20 <= len(key) <= MAX_KEY:
            return None
        store = request.config_dict[store_key]
        row = await store.find_session(_key_hash(key), request.config_dict[clock_key].now())
        if row is None or row.role != self.role:
            return None
        config = snapshot_of(request).config
        if credential_fingerprint(config, self.role, row.subject) != row.credential:
            await store.end_session(row.key_hash)  # opened with a credential no longer valid
            return None
        return Session(role=self.role, subject=row.subject, expires=row.expires_at,
                       csrf=row.csrf, credential=row.credential, key_hash=row.key_hash)

    def login_url(self, request: web.Request) -> str:
        back = request.path_qs if request.method == "GET" else self.path
        return f"{self.path}login?next={quote(back, safe='')}"

    def safe_next(self, target: str | None) -> str:
        """Where to go after login: a page of this audience, never another site."""
        if target and target.startswith(self.path) and "//" not in target and "\\" not in target:
            return target
        return self.path


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def log_out(request: web.Request, sessions: Sessions, *, everywhere: bool) -> NoReturn:
    """End this session, or every session of its subject (in every browser and
    process), and go to the login page."""
    response = web.HTTPSeeOther(f"{sessions.path}login")
    if everywhere:
        session = request[session_request_key]
        await request.config_dict[store_key].end_sessions(session.role, session.subject)
    await sessions.close(response, request)
    raise response


def session_middleware(sessions: Sessions, open_paths: tuple[str, ...]
                       ) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Pages need a session of this audience (else: to the login page); every
    POST needs the session's CSRF token in its form (else: 403)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:  # no such page or method
            raise request.match_info.http_exception
        if request.path.startswith(open_paths):
            if request.method == "POST":  # the login: no logging a victim in from elsewhere
                check_origin(request)
            response = await handler(request)
        else:
            session = await sessions.read(request)
            if session is None:
                raise web.HTTPSeeOther(sessions.login_url(request))
            request[session_request_key] = session
            if request.method == "POST":
                check_origin(request)
                await check_csrf(request, session.csrf)
            response = await handler(request)
        response.headers.update(PAGE_HEADERS)
        return response

    return middleware


async def form_values(request: web.Request) -> MultiDictProxy[str]:
    """A page's form fields (text only), each with every value it was given
    (checkboxes of one name); 400 when the body is not a form."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fail(Error.NOT_A_FORM, "a form (application/x-www-form-urlencoded) is expected")
    try:
        data = await request.post()
    except ValueError as exc:
        fail(Error.MALFORMED_FORM, f"the form could not be read: {str(exc)[:100]}")
    return MultiDictProxy(MultiDict((k, v) for k, v in data.items() if isinstance(v, str)))


async def form(request: web.Request) -> dict[str, str]:
    """A page's form fields (text only), the first value of each."""
    fields = await form_values(request)
    return {k: fields[k] for k in fields}


async def check_csrf(request: web.Request, expected: str) -> None:
    token = (await form(request)).get("csrf", "")
    if not token or not hmac.compare_digest(token.encode("utf-8", "surrogateescape"),
                                            expected.encode()):
        fail(Error.CSRF_FAILED, "the form's CSRF token is missing or wrong: reload the page "
                                 "and submit it again")


LOGIN_CSRF_SECONDS = 3600.0


def _login_mac(config: Config, issued: str, nonce: str) -> str:
    key = hmac.new(config.admin_token.encode(), b"wagate login csrf key", hashlib.sha256)
    return _b64(hmac.new(key.digest(), f"{issued}.{nonce}".encode(), hashlib.sha256).digest())


def _login_token_valid(request: web.Request, token: str) -> bool:
    """Whether `token` is one this server issued within the hour: a cookie an
    attacker planted with a value of its own choosing is not."""
    issued, _, rest = token.partition(".")
    nonce, _, mac = rest.partition(".")
    try:
        age = request.config_dict[clock_key].now() - int(issued, 16)
    except ValueError:
        return False
    config = snapshot_of(request).config
    return (0 <= age <= LOGIN_CSRF_SECONDS and len(token) <= 128
            and hmac.compare_digest(mac.encode(), _login_mac(config, issued, nonce).encode()))


def login_csrf(request: web.Request) -> str:
    """The login form's token (double submit: there is no session yet), the one
    its cookie already holds if this server issued it, else a new one;
    `keep_login_csrf` sets the cookie."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if _login_token_valid(request, token):
        return token
    issued = format(int(request.config_dict[clock_key].now()), "x")
    nonce = secrets.token_urlsafe(18)
    return f"{issued}.{nonce}.{_login_mac(snapshot_of(request).config, issued, nonce)}"


def keep_login_csrf(response: web.StreamResponse, request: web.Request, token: str,
                    path: str) -> None:
    response.set_cookie(LOGIN_CSRF_COOKIE, token, path=path, httponly=True,
                        samesite="Strict", secure=is_https(request), max_age=3600)


async def check_login_csrf(request: web.Request) -> dict[str, str]:
    fields = await form(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = fields.get("csrf", "")
    if not cookie or not given or not hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), cookie.encode("utf-8", "surrogateescape")
    ) or not _login_token_valid(request, cookie):
        fail(Error.CSRF_FAILED, "the login form's CSRF token is missing or wrong: reload the "
                                 "login page and try again")
    return fields


def check_origin(request: web.Request) -> None:
    """A state-changing request from a page must come from this service's own
    pages: its Origin (or, without one, its Referer) names this host. Browsers
    send Origin with every POST; a request without either is no browser's
    cross-site form, and the CSRF token still guards it."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source is None:
        return
    try:
        parts = urlsplit(source)
        netloc = parts.netloc.lower() if parts.scheme in ("http", "https") else ""
    except ValueError:
        netloc = ""
    if not netloc or netloc not in own_hosts(request):
        fail(Error.CROSS_ORIGIN, "this form was sent from another site's page: open "
                                  f"{request.path[:100]} here and send it from there")


def own_hosts(request: web.Request) -> frozenset[str]:
    """The host[:port] forms this service is reached at, as a browser names them:
    the Host the request was sent to, and `[server] public_url`'s."""
    public = public_host(request)
    return frozenset({request.host.lower(), *([public] if public else [])})

