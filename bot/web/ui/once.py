"""A secret shown once, on the page after the form that issued it.

A form that issues a secret (a new subscriber, a rotation) answers with a
redirect, so a reload never issues another; the page it leads to shows the
secret and forgets it, so a reload shows it no more. The secret goes from
one to the other in a cookie the browser holds for at most two minutes,
sent to that one page only, HttpOnly and SameSite=Strict, and sealed: it is
encrypted and authenticated with a key only this service knows (derived
from the admin token), and bound to the page and whoever is logged in (the admin, or the
subscriber), so the
browser's cookie jar never holds it readable and the cookie opens nothing
elsewhere. Nothing is stored server-side: the store keeps secrets hashed only.
(So it is stateless: a copy of the cookie taken within its two minutes would
show the secret again, to the same logged-in admin or subscriber, as the page
itself already did.)

The seal is HMAC-SHA256 as a pseudo-random function in counter mode for the
keystream, then HMAC-SHA256 over the nonce and ciphertext (encrypt, then MAC).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from aiohttp import web

from bot.web.clients import is_https
from bot.web.snapshot import snapshot_of
from bot.web.ui.session import session_request_key

ONCE_COOKIE = "wagate_once"
ONCE_SECONDS = 120
NONCE = 16
MAC = 32


def _keys(request: web.Request, page: str) -> tuple[bytes, bytes]:
    """The keys of a seal for this session and page."""
    root = hmac.new(snapshot_of(request).config.admin_token.encode(), b"wagate once key",
                    hashlib.sha256).digest()
    session = request[session_request_key]
    bound = f"{session.role}\0{session.subject}\0{page}".encode("utf-8", "surrogateescape")
    return (hmac.new(root, b"encrypt\0" + bound, hashlib.sha256).digest(),
            hmac.new(root, b"mac\0" + bound, hashlib.sha256).digest())


def _stream(key: bytes, nonce: bytes, size: int) -> bytes:
    blocks = (hmac.new(key, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest()
              for i in range(-(-size // 32)))
    return b"".join(blocks)[:size]


def keep_once(response: web.StreamResponse, request: web.Request, page: str,
              secret: str) -> None:
    """Hand `secret` to the page at `page` (the redirect's target path)."""
    plain = secret.encode()
    encrypt, mac = _keys(request, page)
    nonce = secrets.token_bytes(NONCE)
    sealed = bytes(a ^ b for a, b in zip(plain, _stream(encrypt, nonce, len(plain)), strict=True))
    tag = hmac.new(mac, nonce + sealed, hashlib.sha256).digest()
    value = base64.urlsafe_b64encode(nonce + sealed + tag).decode()
    response.set_cookie(ONCE_COOKIE, value, path=page, httponly=True, samesite="Strict",
                        secure=is_https(request), max_age=ONCE_SECONDS)


def take_once(request: web.Request) -> str | None:
    """The secret handed to this page, or None (none, or not sealed for this
    session and page). The page then calls `forget_once` on its answer."""
    raw = request.cookies.get(ONCE_COOKIE, "")
    if request.method != "GET" or not raw or len(raw) > 1000:  # (a form's refusal: not yet)
        return None
    try:
        data = base64.urlsafe_b64decode(raw)
    except (ValueError, binascii.Error):
        return None
    if len(data) <= NONCE + MAC:
        return None
    nonce, sealed, tag = data[:NONCE], data[NONCE:-MAC], data[-MAC:]
    encrypt, mac = _keys(request, request.path)
    if not hmac.compare_digest(tag, hmac.new(mac, nonce + sealed, hashlib.sha256).digest()):
        return None
    plain = bytes(a ^ b for a, b in zip(sealed, _stream(encrypt, nonce, len(sealed)),
                                        strict=True))
    return plain.decode("utf-8", "replace")


def forget_once(response: web.StreamResponse, request: web.Request) -> None:
    """The secret was shown (or was not for this page): the browser drops it."""
    if request.method == "GET" and ONCE_COOKIE in request.cookies:
        response.del_cookie(ONCE_COOKIE, path=request.path)
