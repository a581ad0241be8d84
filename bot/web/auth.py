"""Admin bearer-token check (constant time, nothing logged that helps a guesser)."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.web.errors import fail
from bot.web.keys import snapshot_of

log = logging.getLogger("wagate.admin")


def require_admin(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = snapshot_of(request).config.admin_token
    if scheme.lower() != "bearer" or not token:
        _refused(request)
        fail(401, "unauthorized", "admin token required: Authorization: Bearer <token>",
             {"WWW-Authenticate": "Bearer"})
    # A header that was not UTF-8 arrives surrogate-escaped: encode it back as is.
    if not hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"),
                               expected.encode()):
        _refused(request)
        fail(401, "unauthorized", "invalid admin token", {"WWW-Authenticate": "Bearer"})


def _refused(request: web.Request) -> None:
    # Who and where, never what was presented: nothing here helps a guesser.
    log.warning("admin API: unauthorized %s %s from %s", request.method, request.path[:200],
                request.remote)
