"""`create_app(config)`: the one place where the service is wired together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot.config import Config
from bot.locales import load_locales
from bot.metrics import Metrics
from bot.pipeline import Pipeline
from bot.providers.base import Provider
from bot.providers.meta import MetaProvider
from bot.providers.sandbox import SandboxProvider
from bot.runtime import Snapshot, SnapshotHolder
from bot.store import SqliteStore
from bot.web import admin, health, meta, sandbox
from bot.web.errors import error_middleware
from bot.web.keys import (
    holder_key,
    http_session_key,
    metrics_key,
    outbound_worker_key,
    pipeline_key,
    store_key,
)
from bot.workers.outbound import OutboundWorker
from handlers import build_dispatcher

log = logging.getLogger("wagate")

# The largest accepted body: a 3 MB document in base64 plus its JSON envelope.
MAX_BODY = 4 * 1024 * 1024 + 64 * 1024


def create_app(config: Config) -> web.Application:
    """Build the application. Locales are loaded (and checked) here, so a broken
    catalog stops the service from starting rather than answering in English."""
    if any(i.provider == "meta" for i in config.instances.values()) and config.meta is None:
        raise ValueError("an instance uses provider meta but [meta] is missing")
    snapshot = Snapshot(config=config,
                        locales=load_locales(config.locales_dir, config.defaults.locale))
    app = web.Application(client_max_size=MAX_BODY, middlewares=[error_middleware])
    app[holder_key] = SnapshotHolder(snapshot)
    app[metrics_key] = Metrics()
    app.cleanup_ctx.append(http_session_ctx)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(workers_ctx)
    app.add_routes(health.routes)
    app.add_routes(sandbox.routes)
    app.add_routes(meta.routes)
    app.add_routes(admin.routes)
    return app


async def http_session_ctx(app: web.Application) -> AsyncIterator[None]:
    # One keep-alive session for every outbound call (providers, webhooks).
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[http_session_key] = session
        yield


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[holder_key].current.config
    app[store_key] = store = await SqliteStore.open(config.storage.sqlite_path)
    try:
        yield
    finally:
        await store.close()


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    holder = app[holder_key]
    store = app[store_key]
    providers: dict[str, Provider] = {"sandbox": SandboxProvider()}
    if holder.current.config.meta is not None:
        providers["meta"] = MetaProvider(lambda: holder.current.config.meta,
                                         app[http_session_key])
    worker = OutboundWorker(store, lambda: holder.current, providers)
    app[outbound_worker_key] = worker
    app[pipeline_key] = Pipeline(store, holder, build_dispatcher(),
                                 on_committed=lambda effects: worker.notify()
                                 if effects.replies else None)
    task = asyncio.create_task(worker.run(), name="outbound-worker")
    try:
        yield
    finally:
        worker.stop()
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            task.cancel()
        await store.release_claims()
