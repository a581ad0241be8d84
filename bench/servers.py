"""Stand-alone local peers for the benchmark, each run in its own process:

- `graph`: a Graph-API-shaped server answering every send with a message id;
- `receiver`: a webhook receiver answering 200 and counting deliveries;
- `bare`: the baseline, a bare aiohttp app that reads and parses the same
  requests wagate gets and answers 200.

Usage: python -m bench.servers {graph,receiver,bare} PORT
"""

from __future__ import annotations

import itertools
import json
import sys

from aiohttp import web

counter_key = web.AppKey("counter", itertools.count)
count_key = web.AppKey("count", list)


def graph_app() -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    ids = itertools.count(1)
    received: list[int] = [0]
    app[count_key] = received

    async def messages(request: web.Request) -> web.Response:
        await request.read()
        received[0] += 1
        return web.json_response({"messaging_product": "whatsapp",
                                  "messages": [{"id": f"wamid.BENCH{next(ids)}"}]})

    async def media(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"id": f"media.{next(ids)}"})

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"count": received[0]})

    app.router.add_post("/{version}/{pnid}/messages", messages)
    app.router.add_post("/{version}/{pnid}/media", media)
    app.router.add_get("/count", count)
    return app


def receiver_app() -> web.Application:
    app = web.Application()
    received: list[int] = [0]
    app[count_key] = received

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        received[0] += 1
        return web.Response(status=204)

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"count": received[0]})

    app.router.add_post("/hook", hook)
    app.router.add_get("/count", count)
    return app


def bare_app() -> web.Application:
    """The baseline: read the body, parse the JSON, answer 200."""
    app = web.Application(client_max_size=5 * 1024 * 1024)

    async def any_post(request: web.Request) -> web.Response:
        body = await request.read()
        json.loads(body)
        return web.json_response({"status": "ok"})

    app.router.add_post("/{tail:.*}", any_post)
    return app


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    app = {"graph": graph_app, "receiver": receiver_app, "bare": bare_app}[kind]()
    # The same event loop as wagate's, so the baseline is measured like for like.
    from bot.eventloop import new_event_loop

    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                loop=new_event_loop())


if __name__ == "__main__":
    main()
