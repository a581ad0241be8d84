"""`create_app(config)`: the one place where the service is wired together."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot import heap
from bot.clock import Clock
from bot.config import Config, SubscriberConfig
from bot.config.snapshot import Snapshot, SnapshotHolder
from bot.forwarding.safety import GuardedResolver
from bot.locales import load_locales
from bot.metrics import Metrics
from bot.notices import TEMPLATE_KIND, TemplateStates
from bot.pipeline import Pipeline
from bot.processes import GroupReloader
from bot.profile import ProfileKeeper
from bot.providers.base import Provider, Sender, SenderContext, SendResult
from bot.providers.registry import PROVIDERS
from bot.roles import Roles
from bot.runtime import Reloader
from bot.services.managed import ManagedState
from bot.store import OutboundRow, open_store
from bot.store.models import AuditEntry
from bot.web import (
    account,
    admin,
    deliveries,
    docs,
    endpoints,
    health,
    home,
    media,
    notices,
    openapi,
    portal,
    send,
    subscribers,
)
from bot.web.errors import error_middleware
from bot.web.inflight import InFlight
from bot.web.keys import (
    clock_key,
    http_session_key,
    inflight_key,
    mail_worker_key,
    managed_key,
    media_links_key,
    media_worker_key,
    metrics_key,
    outbound_worker_key,
    pipeline_key,
    profile_keeper_key,
    providers_key,
    reloader_key,
    roles_key,
    senders_key,
    store_key,
    template_states_key,
    webhook_worker_key,
    workers_key,
)
from bot.web.observe import answer_headers, observe_middleware
from bot.web.snapshot import holder_key
from bot.web.throttle import Throttle, throttle_key
from bot.web.ui import dashboard
from bot.window import WindowFallback
from bot.workers.later import LaterStatuses
from bot.workers.lifecycle import running
from bot.workers.mail import MailWorker
from bot.workers.media import MediaLinks, MediaWorker
from bot.workers.outbound import OutboundWorker
from bot.workers.webhooks import WebhookWorker
from bot.workers.yielding import ForegroundFirst
from handlers.dispatcher import build_dispatcher

log = logging.getLogger("wagate")

# The largest accepted body: a 3 MB document in base64 (4 MB) plus what real
# clients add around it: JSON-escaped MIME line breaks ("\r\n" every 76
# characters, +220 KB), PHP's escaped slashes ("\/", +64 KB on average) and
# the JSON envelope. Anything larger gets a JSON 413.
MAX_BODY = 4 * 1024 * 1024 + 320 * 1024


def create_app(config: Config, roles: Roles | None = None,
               providers: tuple[Provider, ...] = PROVIDERS) -> web.Application:
    """Build the application. Locales are loaded (and checked) here, so a broken
    catalog stops the service from starting rather than answering in English.
    `roles`: what this process runs (by default everything, in one process)."""
    by_name = {p.name: p for p in providers}
    for instance in config.instances.values():
        provider = by_name.get(instance.provider)
        if provider is None:
            raise ValueError(f"instance {instance.id} uses unknown provider {instance.provider}")
        if provider.config.section_required and provider.name not in config.providers:
            raise ValueError(f"an instance uses provider {provider.name} but "
                             f"[{provider.config.section}] is missing")
    snapshot = Snapshot(config=config,
                        locales=load_locales(config.locales_dir, config.defaults.locale))
    # observe_middleware is outermost: it sees the final status of every answer.
    app = web.Application(client_max_size=MAX_BODY,
                          middlewares=[observe_middleware, error_middleware])
    app.on_response_prepare.append(answer_headers)
    app[holder_key] = holder = SnapshotHolder(snapshot)
    app[roles_key] = roles = roles or Roles()
    app[metrics_key] = metrics = Metrics(roles.group.metrics_dir if roles.group else None)
    app[throttle_key] = Throttle(metrics)
    reloaded = functools.partial(_reloaded, app)
    app[reloader_key] = (Reloader(holder, on_outcome=reloaded) if roles.group is None else
                         GroupReloader(holder, roles.group.supervisor_pid, on_outcome=reloaded))
    app[workers_key] = {}
    app[inflight_key] = InFlight()
    app[health.readiness_key] = health.Readiness()
    app[providers_key] = by_name
    metrics.config_generation.set(holder.generation)
    metrics.config_loaded.set(holder.loaded_at)
    app.on_shutdown.append(_close_reloader)
    app.cleanup_ctx.append(http_session_ctx)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(managed_ctx)
    app.cleanup_ctx.append(workers_ctx)
    app.cleanup_ctx.append(media_ctx)
    app.cleanup_ctx.append(webhooks_ctx)
    if roles.group is not None:
        app.cleanup_ctx.append(group_ctx)
    app.cleanup_ctx.append(profiles_ctx)
    app.cleanup_ctx.append(mail_ctx)
    app.add_routes(home.routes)
    app.add_routes(health.routes)
    app.add_routes(media.routes)
    for provider in providers:
        if provider.routes is not None:
            app.add_routes(provider.routes())
        if provider.inbound is not None:
            app.add_subapp(f"/webhooks/{provider.name}", provider.inbound())
    app.add_routes(admin.routes)
    app.add_routes(subscribers.routes)
    app.add_routes(notices.routes)
    app.add_routes(deliveries.routes)
    app[clock_key] = Clock()
    app.add_routes(send.routes)
    app.add_routes(account.routes)
    app.add_routes(endpoints.routes)
    # The pages, by audience: each sub-app has its own session middleware.
    app.add_routes(dashboard.bare_prefixes)
    app.add_subapp("/ui", dashboard.dashboard_app())
    app.add_subapp("/portal", portal.portal_app())
    app.add_routes(docs.routes)
    app.add_routes(openapi.routes)
    return app


def _reloaded(app: web.Application, outcome: str) -> None:
    if outcome == "ok":
        heap.refreeze()
        if profile_keeper_key in app:  # apply the profiles the new config changed
            app[profile_keeper_key].request_sync()
    metrics, holder = app[metrics_key], app[holder_key]
    metrics.reloads.labels(outcome).inc()
    metrics.config_generation.set(holder.generation)
    metrics.config_loaded.set(holder.loaded_at)
    if store_key in app and app[roles_key].audits_reloads:
        store = app[store_key]
        entry = AuditEntry(actor="config", address=store.worker_id,
                           action="config.reloaded" if outcome == "ok" else
                           "config.reload_refused",
                           details={"path": holder.file.config.path,
                                    "generation": holder.generation})
        task = asyncio.get_running_loop().create_task(store.record_audit(entry, time.time()))
        _BACKGROUND.add(task)
        task.add_done_callback(_audited)


# Tasks nothing waits for, kept until they end (the loop holds only weak references).
_BACKGROUND: set[asyncio.Task[None]] = set()


def _audited(task: asyncio.Task[None]) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("config reload not audited: %s", task.exception())


async def _close_reloader(app: web.Application) -> None:
    await app[reloader_key].close()


async def http_session_ctx(app: web.Application) -> AsyncIterator[None]:
    # One keep-alive session for every outbound call (providers, webhooks).
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[http_session_key] = session
        yield


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[holder_key].current.config
    group = app[roles_key].group
    app[store_key] = store = await open_store(config.storage.url,
                                              pool_size=config.storage.pool_size,
                                              worker_id=group.worker_id if group else None)
    try:
        yield
    finally:
        await store.close()


async def managed_ctx(app: web.Application) -> AsyncIterator[None]:
    """The managed subscribers, loaded before the first request and kept
    current (bot/services/managed.py): a change in any process is in force
    here within a second."""
    store = app[store_key]
    state = ManagedState(store, app[holder_key], clock=app[clock_key].now,
                         on_loaded=lambda _: heap.refreeze())
    await state.refresh(force=True)
    app[managed_key] = state
    await store.on_work("managed", state.request)
    watch = asyncio.create_task(state.watch(), name="managed-watch")
    try:
        yield
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await state.close()


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    holder = app[holder_key]
    store = app[store_key]
    metrics = app[metrics_key]
    # Every provider's sender exists from the start, reading its section per
    # call, so a reload that adds [meta] and a meta number works at once.
    later = LaterStatuses(lambda status: app[pipeline_key].handle(status))
    senders: dict[str, Sender] = {
        name: provider.make_sender(SenderContext(
            section=lambda name=name: holder.current.config.providers.get(name),
            session=app[http_session_key], report_later=later.report))
        for name, provider in app[providers_key].items()}
    app[senders_key] = senders

    def on_result(row: OutboundRow, outcome: str, result: SendResult) -> None:
        instance = holder.current.config.instances.get(row.instance_id)
        provider = instance.provider if instance else "unknown"
        metrics.outbound_results.labels(provider, outcome).inc()
        if outcome != "sent":
            code = str(result.error_code) if result.error_code is not None else "none"
            metrics.outbound_errors.labels(provider, code).inc()

    window = WindowFallback(store, lambda: holder.current.config,
                            {name: p.caps for name, p in app[providers_key].items()}, metrics)
    worker = OutboundWorker(store, lambda: holder.current, senders,
                            holder=store.worker_id, on_result=on_result, window=window)
    app[outbound_worker_key] = worker
    app[workers_key]["outbound"] = worker
    # Templates the provider paused, disabled or rejected: not sent (its notices).
    app[template_states_key] = templates = TemplateStates()
    templates.load(await store.list_notices(kind=TEMPLATE_KIND, limit=1000))
    app[pipeline_key] = Pipeline(store, holder, build_dispatcher(), metrics=metrics,
                                 window=window, on_notice=templates.seen)

    async def refresh_outbound_gauges() -> None:
        depth, oldest = await store.queue_depth()
        metrics.outbound_queue_depth.set(depth)
        metrics.outbound_oldest_age.set(max(0.0, time.time() - oldest) if oldest else 0.0)

    metrics.add_refresher(refresh_outbound_gauges)

    async def refresh_costs() -> None:
        for cost in await store.costs():
            metrics.message_costs.labels(cost.subscriber_id or "none", cost.category,
                                         str(cost.billable).lower()).set(cost.messages)

    metrics.add_refresher(refresh_costs)
    if not app[roles_key].drainers:  # another process of the group sends
        yield
        return
    # Shutdown: sends under way finish (bounded), the rest keep their rows queued.
    async with running(store, "outbound", worker, lambda: _grace(holder),
                       store.release_claims):
        yield
    await later.close()


async def media_ctx(app: web.Application) -> AsyncIterator[None]:
    """The media worker: fetches the files users send (bot/workers/media.py), on
    the provider session for the provider's own base URL, a guarded one elsewhere."""
    holder = app[holder_key]
    store = app[store_key]
    metrics = app[metrics_key]
    app[media_links_key] = MediaLinks(store, lambda: holder.current)
    fetchers = {name: provider.media() for name, provider in app[providers_key].items()
                if provider.media is not None}

    async with _guarded_session(holder) as guarded:
        worker = MediaWorker(store, lambda: holder.current, fetchers,
                             plain=app[http_session_key], guarded=guarded,
                             holder=store.worker_id,
                             on_fetched=lambda outcome: metrics.media_fetches.labels(
                                 outcome).inc())
        app[media_worker_key] = worker
        app[workers_key]["media"] = worker
        if not app[roles_key].drainers:  # another process of the group fetches
            yield
            return
        async with running(store, "media", worker, lambda: _grace(holder),
                           store.release_media_claims):
            yield


def _grace(holder: SnapshotHolder) -> float:
    """How long a worker's work under way may take to finish at shutdown."""
    return holder.current.config.server.shutdown_timeout


def _guarded_session(holder: SnapshotHolder) -> aiohttp.ClientSession:
    """A session whose resolver refuses non-public addresses (but [webhooks]
    allow_private_networks) and that keeps no cookies: for addresses others name."""
    resolver = GuardedResolver(lambda: holder.current.config.webhooks.allow_private_networks)
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=0, use_dns_cache=False,
                                     resolver=resolver)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The webhook deliverer, on a session of its own: its resolver refuses
    non-public addresses (which must not apply to provider calls), and it keeps
    no cookies, so nothing one endpoint sets reaches another."""
    holder = app[holder_key]
    store = app[store_key]
    metrics = app[metrics_key]
    async with _guarded_session(holder) as session:
        inflight = app[inflight_key]
        worker = WebhookWorker(store, lambda: holder.current, session,
                               media=app[media_links_key],
                               on_attempt=lambda outcome: metrics.deliveries.labels(outcome).inc(),
                               gate=ForegroundFirst(lambda: inflight.count > 0),
                               holder=store.worker_id,
                               on_delivered=metrics.delivery_lag.observe)
        app[webhook_worker_key] = worker
        app[workers_key]["webhooks"] = worker

        async def refresh_delivery_gauges() -> None:
            metrics.delivery_queue_depth.set(await store.delivery_queue_depth())
            due = await store.next_delivery_due()  # a leased or retrying one is not due yet
            metrics.delivery_oldest_age.set(max(0.0, time.time() - due) if due else 0.0)

        metrics.add_refresher(refresh_delivery_gauges)
        if not app[roles_key].drainers:  # another process of the group delivers
            yield
            return
        # Attempts under way finish (bounded); pending deliveries stay queued.
        async with running(store, "deliveries", worker, lambda: _grace(holder),
                           store.release_delivery_claims):
            yield


async def group_ctx(app: web.Application) -> AsyncIterator[None]:
    """Count this process in its group's /metrics and /readyz (the supervisor
    drops the count of one that dies)."""
    processes = app[metrics_key].processes
    for role in app[roles_key].names:
        processes.labels(role).set(1)
    yield
    for role in app[roles_key].names:
        processes.labels(role).set(0)


async def profiles_ctx(app: web.Application) -> AsyncIterator[None]:
    """The business profiles: applied at start, then when a reload or the admin
    changes one. A failure is logged and shown in /readyz, never fatal."""
    holder = app[holder_key]
    providers = app[providers_key]
    profilers = {name: provider.make_profiler(SenderContext(
        section=lambda name=name: holder.current.config.providers.get(name),
        session=app[http_session_key]))
        for name, provider in providers.items() if provider.make_profiler is not None}
    keeper = ProfileKeeper(lambda: holder.current.config, providers, profilers)
    app[profile_keeper_key] = keeper
    task = asyncio.create_task(keeper.run(), name="profiles")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """The mails to subscribers ([email]): welcomes from any process, the
    periodic reminders from those that drain (the store's mail log keeps each
    to one send whichever process gets there first)."""
    holder = app[holder_key]
    worker = MailWorker(app[store_key], lambda: holder.current.config, app[clock_key])
    app[mail_worker_key] = worker

    async def welcome(sub: SubscriberConfig, secret: str) -> None:
        worker.welcome(sub, secret)  # in the background: the 201 does not wait for SMTP

    app[managed_key].on_created.append(welcome)
    task = (asyncio.create_task(worker.run(), name="mail-worker")
            if app[roles_key].drainers else None)
    try:
        yield
    finally:
        worker.stop()
        grace = holder.current.config.server.shutdown_timeout
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task, grace)
        await worker.drain(grace)
