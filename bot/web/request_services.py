"""The services (bot/services) as a request's handler reaches them: built over
the app's store and workers, from the main app or any of its sub-apps."""

from __future__ import annotations

from aiohttp import web

from bot.services.deliveries import Deliveries
from bot.services.endpoints import Endpoints
from bot.services.registrations import Registrations
from bot.services.sends import Sends
from bot.services.subscribers import Subscribers
from bot.web.keys import (
    clock_key,
    managed_key,
    metrics_key,
    pipeline_key,
    store_key,
    template_states_key,
)


def deliveries_service(request: web.Request) -> Deliveries:
    app = request.config_dict
    return Deliveries(app[store_key], lambda: app[managed_key].holder.managed.endpoints)


def registrations_service(request: web.Request) -> Registrations:
    app = request.config_dict
    return Registrations(app[store_key], app[pipeline_key], app[metrics_key])


def sends_service(request: web.Request) -> Sends:
    app = request.config_dict
    return Sends(app[store_key], app[template_states_key].unusable)


def subscribers_service(request: web.Request) -> Subscribers:
    app = request.config_dict
    clock = app[clock_key]
    return Subscribers(app[store_key], app[managed_key], clock.now, clock.today)


def endpoints_service(request: web.Request) -> Endpoints:
    app = request.config_dict
    return Endpoints(app[store_key], app[managed_key], app[clock_key].now)
