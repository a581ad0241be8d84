"""Typed application keys: every shared object of the app, declared once."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from bot.metrics import Metrics
from bot.pipeline import Pipeline
from bot.runtime import SnapshotHolder
from bot.store import Store
from bot.workers.outbound import OutboundWorker

holder_key = web.AppKey("holder", SnapshotHolder)
store_key = web.AppKey("store", Store)
pipeline_key = web.AppKey("pipeline", Pipeline)
outbound_worker_key = web.AppKey("outbound_worker", OutboundWorker)
http_session_key = web.AppKey("http_session", aiohttp.ClientSession)
metrics_key = web.AppKey("metrics", Metrics)
