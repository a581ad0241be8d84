"""Credential checks: the admin's bearer token and a subscriber's
X-WM-CLIENT-ID / X-WM-CLIENT-SECRET (constant time, nothing logged that helps
a guesser)."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.config import Config, SubscriberConfig
from bot.subscribers import authenticate
from bot.web.catalog import Error
from bot.web.errors import fail
from bot.web.snapshot import snapshot_of

log = logging.getLogger("wagate.admin")


def require_admin(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = snapshot_of(request).config.admin_token
    if scheme.lower() != "bearer" or not token:
        _refused(request)
        fail(Error.UNAUTHORIZED, "admin token required: Authorization: Bearer <token>",
             {"WWW-Authenticate": "Bearer"})
    # A header that was not UTF-8 arrives surrogate-escaped: encode it back as is.
    if not hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"),
                               expected.encode()):
        _refused(request)
        fail(Error.UNAUTHORIZED, "invalid admin token", {"WWW-Authenticate": "Bearer"})


# What the checks below can answer, for the routes that use them to declare.
ADMIN_ERRORS = frozenset({Error.UNAUTHORIZED})
SUBSCRIBER_ERRORS = frozenset({Error.MISSING_CREDENTIALS, Error.INVALID_CREDENTIALS})


def _refused(request: web.Request) -> None:
    # Who and where, never what was presented: nothing here helps a guesser.
    log.warning("admin API: unauthorized %s %s from %s", request.method, request.path[:200],
                request.remote)


def require_subscriber(request: web.Request, config: Config) -> SubscriberConfig:
    """The subscriber whose send-API credentials the request carries; 401 or 474."""
    client_id = request.headers.get("X-WM-CLIENT-ID", "").strip()
    secret = request.headers.get("X-WM-CLIENT-SECRET", "").strip()
    if not client_id or not secret:
        fail(Error.MISSING_CREDENTIALS,
             "the X-WM-CLIENT-ID and X-WM-CLIENT-SECRET headers are required")
    sub = authenticate(config, client_id, secret)
    if sub is None:
        # The client id is no secret; the presented secret is never logged.
        logging.getLogger("wagate.send").info(
            "send API: invalid credentials for client id %r from %s", client_id[:100],
            request.remote)
        fail(Error.INVALID_CREDENTIALS, "invalid CLIENT ID or CLIENT SECRET")
    return sub
