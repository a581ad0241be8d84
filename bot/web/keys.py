"""Typed application keys: every shared object of the app, declared once."""

from __future__ import annotations

from typing import Protocol

import aiohttp
from aiohttp import web

from bot.clock import Clock
from bot.metrics import Metrics
from bot.pipeline import Pipeline
from bot.processes import Roles
from bot.profile import ProfileKeeper
from bot.providers.base import Provider, Sender
from bot.runtime import Reloader, Snapshot, SnapshotHolder
from bot.store import Store
from bot.web.inflight import InFlight
from bot.workers.outbound import OutboundWorker
from bot.workers.webhooks import WebhookWorker

holder_key = web.AppKey("holder", SnapshotHolder)
store_key = web.AppKey("store", Store)
pipeline_key = web.AppKey("pipeline", Pipeline)
outbound_worker_key = web.AppKey("outbound_worker", OutboundWorker)
http_session_key = web.AppKey("http_session", aiohttp.ClientSession)
metrics_key = web.AppKey("metrics", Metrics)


# ---- operations


class Worker(Protocol):
    """A background worker as readiness sees it."""

    @property
    def running(self) -> bool: ...


reloader_key = web.AppKey("reloader", Reloader)
inflight_key = web.AppKey("inflight", InFlight)
# Every background worker by name ("outbound", ...): /readyz checks each one runs.
workers_key = web.AppKey("workers", dict[str, Worker])
# What this process runs (HTTP, the queue drainers, both) and in which group.
roles_key = web.AppKey("roles", Roles)
# The config snapshot a request was pinned to when it came in (request middleware).
snapshot_request_key = web.RequestKey("snapshot", Snapshot)


def snapshot_of(request: web.Request) -> Snapshot:
    """The config and locales in force when this request arrived: read once per
    request, so a reload in the middle of it never mixes two configs."""
    snap = request.get(snapshot_request_key)
    if snap is None:
        snap = request[snapshot_request_key] = request.config_dict[holder_key].current
    return snap


# ---- send API

# Wall time for quota periods and plan dates; tests shift it instead of sleeping.
clock_key = web.AppKey("clock", Clock)


# ---- webhooks

webhook_worker_key = web.AppKey("webhook_worker", WebhookWorker)


# ---- providers

# Every provider this app knows, by name (bot/providers/registry.py).
providers_key = web.AppKey("providers", dict[str, Provider])
# Each provider's sender by provider name (one per app): the outbound worker
# sends through them; inbound routes, /readyz and the profile ask them too.
senders_key = web.AppKey("senders", dict[str, Sender])
# Applies each gateway number's business profile through its provider.
profile_keeper_key = web.AppKey("profile_keeper", ProfileKeeper)
