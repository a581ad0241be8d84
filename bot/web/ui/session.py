"""Browser sessions for the dashboard and the portal.

A session is a signed cookie (HMAC-SHA256 under a key derived from the admin
token), so every process of the service reads it alike and nothing is stored.
It names its role, its subject, when it ends, its CSRF token, and a
fingerprint of the credential it was opened with: changing the admin token
or a subscriber's secret ends the sessions opened with the old one. The cookie
is HttpOnly and SameSite=Strict, Secure when the browser came over https
(`bot/web/clients.py`: TLS here, a trusted proxy's word, an https public_url).

Every POST is checked twice: its CSRF token (the session's; on the login
form, a token this server signed, kept in a cookie) and its Origin, which
must be this service's own host.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from aiohttp import web

from bot.config import Config
from bot.web.catalog import Error
from bot.web.clients import is_https, public_host
from bot.web.errors import fail
from bot.web.keys import clock_key
from bot.web.snapshot import snapshot_of

Role = Literal["admin", "subscriber"]
SESSION_SECONDS = 8 * 3600.0
LOGIN_CSRF_COOKIE = "wagate_login"
MAX_COOKIE = 2048

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


session_request_key = web.RequestKey("session", Session)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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

    @staticmethod
    def _key(config: Config) -> bytes:
        return hmac.new(config.admin_token.encode(), b"wagate session key",
                        hashlib.sha256).digest()

    def _sign(self, config: Config, body: bytes) -> str:
        mac = hmac.new(self._key(config), self.cookie.encode() + b"\0" + body, hashlib.sha256)
        return _b64(mac.digest())

    def open(self, response: web.StreamResponse, request: web.Request, subject: str) -> None:
        config = snapshot_of(request).config
        fingerprint = credential_fingerprint(config, self.role, subject)
        assert fingerprint is not None
        body = json.dumps({"r": self.role, "s": subject, "c": secrets.token_urlsafe(24),
                           "k": fingerprint,
                           "e": request.config_dict[clock_key].now() + SESSION_SECONDS},
                          separators=(",", ":")).encode()
        response.set_cookie(self.cookie, f"{_b64(body)}.{self._sign(config, body)}",
                            path=self.path, httponly=True, samesite="Strict",
                            secure=is_https(request), max_age=int(SESSION_SECONDS))

    def close(self, response: web.StreamResponse) -> None:
        response.del_cookie(self.cookie, path=self.path)

    def read(self, request: web.Request) -> Session | None:
        """The request's session, or None when there is none, it is forged, it
        has ended, or its credential changed."""
        raw = request.cookies.get(self.cookie, "")
        body_b64, _, mac = raw.partition(".")
        if not raw or len(raw) > MAX_COOKIE or not mac:
            return None
        config = snapshot_of(request).config
        try:
            body = _unb64(body_b64)
            if not hmac.compare_digest(mac.encode(), self._sign(config, body).encode()):
                return None
            data = json.loads(body)
            session = Session(role=data["r"], subject=str(data["s"]), expires=float(data["e"]),
                              csrf=str(data["c"]), credential=str(data["k"]))
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        now = request.config_dict[clock_key].now()
        # NaN and Infinity (which json reads) never compare below now: only a finite
        # end within one session's length from now is one.
        if not now < session.expires <= now + SESSION_SECONDS:
            return None
        if credential_fingerprint(config, session.role, session.subject) != session.credential:
            return None
        return session

    def login_url(self, request: web.Request) -> str:
        back = request.path_qs if request.method == "GET" else self.path
        return f"{self.path}login?next={quote(back, safe='')}"

    def safe_next(self, target: str | None) -> str:
        """Where to go after login: a page of this audience, never another site."""
        if target and target.startswith(self.path) and "//" not in target and "\\" not in target:
            return target
        return self.path


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
            session = sessions.read(request)
            if session is None:
                raise web.HTTPSeeOther(sessions.login_url(request))
            if session.role != sessions.role:  # a signed session of another audience
                fail(Error.WRONG_SESSION, "this page is not for this session")
            request[session_request_key] = session
            if request.method == "POST":
                check_origin(request)
                await check_csrf(request, session.csrf)
            response = await handler(request)
        response.headers.update(PAGE_HEADERS)
        return response

    return middleware


async def form(request: web.Request) -> dict[str, str]:
    """A page's form fields (text only); 400 when the body is not a form."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fail(Error.NOT_A_FORM, "a form (application/x-www-form-urlencoded) is expected")
    try:
        data = await request.post()
    except ValueError as exc:
        fail(Error.MALFORMED_FORM, f"the form could not be read: {str(exc)[:100]}")
    return {k: v for k, v in data.items() if isinstance(v, str)}


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

