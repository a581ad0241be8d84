"""Admin bearer-token check (constant time, nothing logged that helps a guesser)."""

from __future__ import annotations

import hmac

from aiohttp import web

from bot.web.errors import fail
from bot.web.keys import holder_key


def require_admin(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = request.app[holder_key].current.config.admin_token
    if scheme.lower() != "bearer" or not token:
        fail(401, "unauthorized", "admin token required: Authorization: Bearer <token>",
             {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        fail(401, "unauthorized", "invalid admin token", {"WWW-Authenticate": "Bearer"})
