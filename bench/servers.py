"""Stand-alone local peers for the benchmark, each run in its own process:

- `graph`: a Graph-API-shaped server answering every send with a message id,
  optionally after DELAY seconds (a far-away Graph); it records every message
  it accepted (recipient, text, when), listed at `GET /log`;
- `receiver`: a webhook receiver answering 204; it records every delivery
  (webhook-id, the event's message id or number, when), listed at `GET /log`;
- `bare`: the baseline, a bare aiohttp app that reads, verifies (Meta's
  signature, the client's secret) and parses the same requests wagate gets
  and answers 200;
- `forward`: `bare` plus what every request of a gateway also causes: one
  POST of the body to TARGET (the receiver), made after answering, at most 64
  at a time. No storage, no checks: the ceiling for a gateway on this machine.

Usage: python -m bench.servers {graph,receiver,bare} PORT
       python -m bench.servers graph PORT DELAY
       python -m bench.servers forward PORT TARGET

The logs serve the crash suite (reliability/crash.py: what was lost, what
came twice) and the lag runs of the benchmark. A message counts as accepted
once its request is read, before any delay: like Meta, which may have sent a
message whose answer never reached the caller.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

counter_key = web.AppKey("counter", itertools.count)
count_key = web.AppKey("count", list)
log_key = web.AppKey("log", list)
session_key = web.AppKey("session", aiohttp.ClientSession)


def _log_route(app: web.Application, log: list[Any]) -> None:
    """`GET /log?since=N`: the entries from the Nth on (a long log comes in parts)."""
    async def listing(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.json_response({"entries": log[since:since + 50_000], "total": len(log)})

    app[log_key] = log
    app.router.add_get("/log", listing)


# A photo as a phone sends one over WhatsApp (a JPEG's size, after its compression).
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 240


def graph_app(delay: float = 0.0) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    ids = itertools.count(1)
    received: list[int] = [0]
    log: list[tuple[str, str, float]] = []  # (to, text or type, at)
    app[count_key] = received
    _log_route(app, log)

    async def messages(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        received[0] += 1
        text = body.get("text", {}).get("body") if body.get("type") == "text" else None
        log.append((str(body.get("to")), text or str(body.get("type")), time.time()))
        if delay:
            await asyncio.sleep(delay)
        return web.json_response({"messaging_product": "whatsapp",
                                  "messages": [{"id": f"wamid.BENCH{next(ids)}"}]})

    async def media(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"id": f"media.{next(ids)}"})

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"count": received[0]})

    # A user's file, as Graph serves it: the media id gives a url, the url the bytes.
    async def media_lookup(request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        return web.json_response({"messaging_product": "whatsapp", "id": media_id,
                                  "url": f"{request.url.origin()}/download/{media_id}",
                                  "mime_type": "image/jpeg", "file_size": len(PHOTO)})

    async def download(request: web.Request) -> web.Response:
        return web.Response(body=PHOTO, content_type="image/jpeg")

    app.router.add_get("/download/{media_id}", download)
    app.router.add_get("/{version}/{media_id}", media_lookup)
    app.router.add_post("/{version}/{pnid}/messages", messages)
    app.router.add_post("/{version}/{pnid}/media", media)
    app.router.add_get("/count", count)
    return app


def receiver_app() -> web.Application:
    app = web.Application()
    received: list[int] = [0]
    log: list[tuple[str, str, str, float]] = []  # (webhook-id, event type, subject, at)
    app[count_key] = received
    _log_route(app, log)

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        received[0] += 1
        try:
            event = json.loads(body)
            data = event.get("data", {})
            # A message's id (message.received, message.status), else the number.
            subject = str(data.get("id") or data.get("number"))
            log.append((request.headers.get("webhook-id", ""), str(event.get("type")), subject,
                        time.time()))
        except (ValueError, AttributeError):
            log.append((request.headers.get("webhook-id", ""), "unreadable", "", time.time()))
        return web.Response(status=204)

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"count": received[0]})

    app.router.add_post("/hook", hook)
    app.router.add_get("/count", count)
    return app


def verified(request: web.Request, body: bytes) -> bool:
    """What every request of a gateway needs before its body counts: Meta's
    signature on a webhook, the client's secret on a send."""
    from bench.harness import APP_SECRET, CLIENT_SECRET

    if request.path.startswith("/webhooks/"):
        digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""),
                                   "sha256=" + digest)
    return hmac.compare_digest(request.headers.get("X-WM-CLIENT-SECRET", "").encode(),
                               CLIENT_SECRET.encode())


def bare_app() -> web.Application:
    """The baseline: read the body, verify it, parse the JSON, answer 200."""
    app = web.Application(client_max_size=5 * 1024 * 1024)

    async def any_post(request: web.Request) -> web.Response:
        body = await request.read()
        if not verified(request, body):
            return web.json_response({"error": "forbidden"}, status=403)
        json.loads(body)
        return web.json_response({"status": "ok"})

    app.router.add_post("/{tail:.*}", any_post)
    return app


def forward_app(target: str) -> web.Application:
    """The bare baseline plus one outbound POST per request."""
    app = web.Application(client_max_size=5 * 1024 * 1024)
    slots = asyncio.Semaphore(64)
    sending: set[asyncio.Task[None]] = set()

    async def forward(body: bytes) -> None:
        async with slots, app[session_key].post(target, data=body) as resp:
            await resp.read()

    async def any_post(request: web.Request) -> web.Response:
        body = await request.read()
        if not verified(request, body):
            return web.json_response({"error": "forbidden"}, status=403)
        json.loads(body)
        task = asyncio.create_task(forward(body))
        sending.add(task)
        task.add_done_callback(sending.discard)
        return web.json_response({"status": "ok"})

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            app[session_key] = session
            yield

    async def pending(request: web.Request) -> web.Response:
        return web.json_response({"pending": len(sending)})

    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/pending", pending)
    app.router.add_post("/{tail:.*}", any_post)
    return app


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "forward":
        app = forward_app(sys.argv[3])
    elif kind == "graph":
        app = graph_app(float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
    else:
        app = {"graph": graph_app, "receiver": receiver_app, "bare": bare_app}[kind]()
    # The same event loop as wagate's, so the baseline is measured like for like.
    from bot.eventloop import new_event_loop

    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                loop=new_event_loop())


if __name__ == "__main__":
    main()
