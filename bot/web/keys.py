"""Typed application keys: every shared object of the app, declared once."""

from __future__ import annotations

from typing import Protocol

import aiohttp
from aiohttp import web

from bot.clock import Clock
from bot.config.snapshot import Snapshot
from bot.metrics import Metrics
from bot.notices import TemplateStates
from bot.pipeline import Pipeline
from bot.profile import ProfileKeeper
from bot.providers.base import Provider, Sender
from bot.roles import Roles
from bot.services.managed import ManagedState
from bot.store import Store
from bot.web.inflight import InFlight
from bot.workers.mail import MailWorker
from bot.workers.media import MediaLinks, MediaWorker
from bot.workers.outbound import OutboundWorker
from bot.workers.webhooks import WebhookWorker

store_key = web.AppKey("store", Store)
pipeline_key = web.AppKey("pipeline", Pipeline)
outbound_worker_key = web.AppKey("outbound_worker", OutboundWorker)
template_states_key = web.AppKey("template_states", TemplateStates)
http_session_key = web.AppKey("http_session", aiohttp.ClientSession)
metrics_key = web.AppKey("metrics", Metrics)


# ---- operations


class Worker(Protocol):
    """A background worker as readiness sees it."""

    @property
    def running(self) -> bool: ...


class Reloading(Protocol):
    """The reloader (bot/runtime.py Reloader) as the routes and the server use it:
    typed here by what it does, so this module does not import the loader above it."""

    async def reload(self) -> Snapshot: ...

    def request(self) -> None: ...

    async def close(self) -> None: ...


reloader_key = web.AppKey("reloader", Reloading)
inflight_key = web.AppKey("inflight", InFlight)
# Every background worker by name ("outbound", ...): /readyz checks each one runs.
workers_key = web.AppKey("workers", dict[str, Worker])
# What this process runs (HTTP, the queue drainers, both) and in which group.
roles_key = web.AppKey("roles", Roles)
# The config snapshot (holder_key, snapshot_of): bot/web/snapshot.py.


# ---- subscribers managed at runtime: their state, kept current in this process

managed_key = web.AppKey("managed", ManagedState)


# ---- send API

# Wall time for quota periods and plan dates; tests shift it instead of sleeping.
clock_key = web.AppKey("clock", Clock)


# ---- webhooks

webhook_worker_key = web.AppKey("webhook_worker", WebhookWorker)


# ---- inbound media

media_links_key = web.AppKey("media_links", MediaLinks)
media_worker_key = web.AppKey("media_worker", MediaWorker)


# ---- mail to subscribers ([email])

mail_worker_key = web.AppKey("mail_worker", MailWorker)


# ---- providers

# Every provider this app knows, by name (bot/providers/registry.py).
providers_key = web.AppKey("providers", dict[str, Provider])
# Each provider's sender by provider name (one per app): the outbound worker
# sends through them; inbound routes, /readyz and the profile ask them too.
senders_key = web.AppKey("senders", dict[str, Sender])
# Applies each gateway number's business profile through its provider.
profile_keeper_key = web.AppKey("profile_keeper", ProfileKeeper)
