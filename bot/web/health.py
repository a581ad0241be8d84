"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from bot.web.keys import outbound_worker_key, store_key

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    problems = []
    try:
        await request.app[store_key].ping()
    except Exception as exc:
        problems.append(f"store: {type(exc).__name__}")
    if not request.app[outbound_worker_key].running:
        problems.append("outbound worker not running")
    if problems:
        return web.json_response({"status": "unavailable", "reasons": problems}, status=503)
    return web.json_response({"status": "ready"})
