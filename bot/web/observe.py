"""The outermost request middleware: request id, config pinned, latency measured.

- Request id: the caller's `X-Request-Id` when it is a sane token (letters,
  digits, `._:-`, at most 64), else a fresh one; echoed in the response and
  put on every log record of the request (`bot.logs.request_id`).
- The config snapshot is read once, when the request arrives, and pinned to it
  (`bot.web.keys.snapshot_of`): a reload during the request never mixes configs.
- Requests in flight are counted, so a shutdown waits for them (`bot.web.server.run_app`).
- Every answer names the server only as "wagate" (aiohttp's default names
  Python's and aiohttp's versions), and an answer to a request that carried
  credentials is never stored by a cache (`Cache-Control: no-store`).
- Latency is observed by route *template* (`/admin/registrations/{number}`,
  never the raw path) and a closed set of methods, so the number of series
  stays bounded whatever clients send.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.logs import request_id
from bot.web.keys import inflight_key, metrics_key
from bot.web.snapshot import holder_key, snapshot_request_key

log = logging.getLogger("wagate.http")

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"
SERVER = "wagate"
CREDENTIAL_HEADERS = ("Authorization", "X-WM-CLIENT-SECRET")
# Set on a 5xx that is a verdict, not a fault (/readyz's 503 while a group
# starts): its route logs what changed, so the warning below would only repeat it.
verdict_key = web.ResponseKey("verdict", bool)


async def answer_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: what every answer says about the server and caching."""
    response.headers["Server"] = SERVER
    if any(h in request.headers for h in CREDENTIAL_HEADERS):
        response.headers.setdefault("Cache-Control", "no-store")


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def observe_middleware(request: web.Request,
                             handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                             ) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    rid = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
    token = request_id.set(rid)
    request[snapshot_request_key] = request.app[holder_key].current
    inflight = request.app[inflight_key]
    inflight.enter()
    start = time.perf_counter()
    status = 500
    verdict = False
    try:
        response = await handler(request)
        status = response.status
        verdict = response.get(verdict_key, False)
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = rid
            if inflight.draining:
                response.force_close()  # shutting down: no keep-alive
        return response
    except web.HTTPException as exc:  # redirects and the like pass through as exceptions
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = rid
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away before the answer
        raise
    finally:
        elapsed = time.perf_counter() - start
        route = route_template(request)
        method = request.method if request.method in _METHODS else "OTHER"
        request.app[metrics_key].request_latency.labels(method, route, str(status)).observe(
            elapsed)
        if status >= 500 and not verdict:
            log.warning("%s %s answered %d in %.1f ms", method, route, status, elapsed * 1000)
        else:
            log.debug("%s %s answered %d in %.1f ms", method, route, status, elapsed * 1000)
        inflight.leave()
        request_id.reset(token)
