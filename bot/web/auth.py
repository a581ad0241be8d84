"""Credential checks: the admin's bearer token and a subscriber's
X-WM-CLIENT-ID / X-WM-CLIENT-SECRET (constant time, nothing logged that helps
a guesser, failures throttled per address and credential: `throttle.py`)."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot.config import Config, SubscriberConfig
from bot.subscribers import authenticate
from bot.web.catalog import Error
from bot.web.clients import client_address
from bot.web.errors import fail
from bot.web.keys import clock_key
from bot.web.snapshot import snapshot_of
from bot.web.throttle import Surface, refused_for, throttle_key

log = logging.getLogger("wagate.admin")


ADMIN_CREDENTIAL = "admin token"  # the throttle's name for it (there is one)


def require_admin(request: web.Request) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = snapshot_of(request).config.admin_token
    if scheme.lower() != "bearer" or not token:
        _refused(request)
        fail(Error.UNAUTHORIZED, "admin token required: Authorization: Bearer <token>",
             {"WWW-Authenticate": "Bearer"})
    refuse_if_throttled(request, "admin_api", ADMIN_CREDENTIAL)
    # A header that was not UTF-8 arrives surrogate-escaped: encode it back as is.
    if not hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"),
                               expected.encode()):
        _refused(request)
        failed(request, "admin_api", ADMIN_CREDENTIAL)
        fail(Error.UNAUTHORIZED, "invalid admin token", {"WWW-Authenticate": "Bearer"})


# What the checks below can answer, for the routes that use them to declare.
ADMIN_ERRORS = frozenset({Error.UNAUTHORIZED, Error.TOO_MANY_FAILURES})
SUBSCRIBER_ERRORS = frozenset({Error.MISSING_CREDENTIALS, Error.INVALID_CREDENTIALS,
                               Error.TOO_MANY_FAILURES})


def _refused(request: web.Request) -> None:
    # Who and where, never what was presented: nothing here helps a guesser.
    log.warning("admin API: unauthorized %s %s from %s", request.method, request.path[:200],
                client_address(request))


def throttled(request: web.Request, surface: Surface, credential: str) -> int | None:
    """Seconds the client must wait before trying `credential` again, or None."""
    return request.config_dict[throttle_key].wait(surface, client_address(request), credential)


def refuse_if_throttled(request: web.Request, surface: Surface, credential: str) -> None:
    """A 429 with Retry-After when the client failed too often (API answers)."""
    wait = throttled(request, surface, credential)
    if wait is not None:
        fail(Error.TOO_MANY_FAILURES, refused_for(wait), {"Retry-After": str(wait)})


def failed(request: web.Request, surface: Surface, credential: str) -> None:
    request.config_dict[throttle_key].failed(surface, client_address(request), credential)


def require_subscriber(request: web.Request, config: Config) -> SubscriberConfig:
    """The subscriber whose send-API credentials the request carries; 401, 429 or 474."""
    client_id = request.headers.get("X-WM-CLIENT-ID", "").strip()
    secret = request.headers.get("X-WM-CLIENT-SECRET", "").strip()
    if not client_id or not secret:
        fail(Error.MISSING_CREDENTIALS,
             "the X-WM-CLIENT-ID and X-WM-CLIENT-SECRET headers are required")
    refuse_if_throttled(request, "send_api", client_id[:200])
    sub = authenticate(config, client_id, secret, request.config_dict[clock_key].now())
    if sub is None:
        failed(request, "send_api", client_id[:200])
        # The client id is no secret; the presented secret is never logged.
        logging.getLogger("wagate.send").info(
            "send API: invalid credentials for client id %r from %s", client_id[:100],
            client_address(request))
        fail(Error.INVALID_CREDENTIALS, "invalid CLIENT ID or CLIENT SECRET")
    return sub
