"""Liveness, readiness and metrics: open endpoints (no admin token).

`/metrics` is open like `/healthz`, as the spec lists them together: its
labels hold route templates, provider names, subscriber ids, locales and
outcome codes — never a secret, a phone number or a message body. Put the
service behind a proxy (or a firewall) that keeps `/metrics` private if
subscriber ids must not be seen from outside.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from bot.config import Config
from bot.metrics import CONTENT_TYPE
from bot.providers.base import readiness_of
from bot.web.keys import (
    metrics_key,
    profile_keeper_key,
    roles_key,
    senders_key,
    store_key,
    workers_key,
)
from bot.web.notices import problems_of
from bot.web.observe import verdict_key
from bot.web.operations import ApiRoutes, json_response, object_schema
from bot.web.snapshot import holder_key

log = logging.getLogger("wagate.health")
routes = ApiRoutes()


@dataclass(frozen=True, slots=True, kw_only=True)
class Alive:
    status: Literal["ok"] = "ok"


_NOT_READY = {"description": "Not ready, with the reasons", "content": {"application/json": {
    "schema": object_schema({"status": {"const": "unavailable"},
                       "reasons": {"type": "array", "items": {"type": "string"}},
                       "config_generation": {"type": "integer"}})}}}
_OPEN = {"tag": "operations", "security": "open", "errors": ()}

PING_TIMEOUT = 2.0


class Readiness:
    """What /readyz last answered, so the log says each change once rather than
    every probe: not ready before the first ready (a group starting, its
    processes up one by one) is info, not ready after it a warning."""

    def __init__(self) -> None:
        self.ever_ready = False
        self.reasons: list[str] | None = None

    def answered(self, reasons: list[str]) -> None:
        if reasons == self.reasons:
            return
        if not reasons:
            log.info("ready")
            self.ever_ready = True
        elif self.ever_ready:
            log.warning("not ready: %s", "; ".join(reasons))
        else:
            log.info("not ready yet: %s", "; ".join(reasons))
        self.reasons = reasons


readiness_key = web.AppKey("readiness", Readiness)


@routes.operation("get", "/healthz", summary="Liveness: the process answers", ok=Alive,
                  ok_description="Alive", **_OPEN)
async def healthz(request: web.Request) -> web.Response:
    return json_response(Alive())


@routes.operation(
    "get", "/readyz", summary="Readiness: the store answers, every worker runs, every provider "
                              "can send (a WAHA account is linked)",
    ok={**object_schema({"status": {"const": "ready"},
                         "config_generation": {"type": "integer"}}),
        "properties": {"status": {"const": "ready"}, "config_generation": {"type": "integer"},
                       "details": {"type": "object", "properties": {
                           "profiles": {"type": "object"},
                           "profile_problems": {"type": "array",
                                                "items": {"type": "string"}}}}}},
    ok_description="Ready; `details.profiles` (when a profile is configured) says how each "
                   "number's business profile was applied, and `details.profile_problems` "
                   "those that were not: never a reason to be unready",
    other_responses={"503": _NOT_READY}, **_OPEN)
async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers, every worker runs (under `serve --workers
    N`: and every process of the group runs) and every provider can send (a
    WAHA account is linked); 503 with the reasons otherwise."""
    app = request.app
    problems = []
    store = app.get(store_key)
    if store is None:
        problems.append("store: not open")
    else:
        try:
            await asyncio.wait_for(store.ping(), PING_TIMEOUT)
        except TimeoutError:
            problems.append(f"store: no answer within {PING_TIMEOUT:g}s")
        except Exception as exc:
            problems.append(f"store: {type(exc).__name__}")
    roles = app[roles_key]
    workers = app.get(workers_key) or {}
    if roles.drainers and not workers:
        problems.append("workers: none started")
    for name, worker in sorted(workers.items()):
        if roles.drainers and not worker.running:
            problems.append(f"{name} worker not running")
    if roles.group is not None:
        problems.extend(group_problems(app[metrics_key].group_processes(),
                                       roles.group.http_processes))
    # A config is always loaded: the service does not start without a valid one,
    # and a refused reload leaves the old one in force.
    holder = app[holder_key]
    problems += await _provider_problems(app, holder.current.config)
    if store is not None:  # an account the provider restricted or disabled (its notices)
        try:
            problems += await asyncio.wait_for(problems_of(store), PING_TIMEOUT)
        except Exception as exc:  # the ping above already says what is wrong
            log.debug("readyz: account notices not read: %s", exc)
    body: dict[str, object] = {"config_generation": holder.generation}
    keeper = app.get(profile_keeper_key)
    if keeper is not None and keeper.states:
        # Profiles that did not apply are shown, never a reason to be unready.
        body["details"] = {"profiles": {str(i): s.json() for i, s in
                                        sorted(keeper.states.items())},
                           "profile_problems": keeper.problems()}
    app[readiness_key].answered(problems)
    if problems:
        response = json_response({"status": "unavailable", "reasons": problems, **body},
                                 status=503)
        response[verdict_key] = True
        return response
    return json_response({"status": "ready", **body})


def group_problems(running: dict[str, int], http_processes: int) -> list[str]:
    """What is missing from a `serve --workers N` group, by the live processes'
    own counts (shared through the metrics directory)."""
    problems = []
    if running.get("http", 0) < http_processes:
        problems.append(f"http: {running.get('http', 0)} of {http_processes} processes running")
    if running.get("drainers", 0) < 1:
        problems.append("drainers: no process running")
    return problems


async def _provider_problems(app: web.Application, config: Config) -> list[str]:
    """What each provider says of its numbers (e.g. a WAHA account not linked)."""
    senders = app.get(senders_key) or {}
    problems = []
    for name, sender in sorted(senders.items()):
        instances = [i for i in config.instances.values() if i.provider == name]
        if instances:
            try:
                problems += await asyncio.wait_for(readiness_of(sender, instances),
                                                   PING_TIMEOUT * 2)
            except TimeoutError:
                problems.append(f"provider {name}: no readiness answer in time")
    return problems


@routes.operation(
    "get", "/metrics", summary="Prometheus metrics", ok={"type": "string"},
    ok_description="Prometheus text exposition format", ok_content_type="text/plain",
    description="Open like /healthz; labels hold route templates, provider names, subscriber "
                "ids, locales and outcome codes, never a secret, a phone number or a message "
                "body. Keep it private behind a proxy if subscriber ids must not be seen.",
    **_OPEN)
async def metrics(request: web.Request) -> web.Response:
    body = await request.app[metrics_key].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
