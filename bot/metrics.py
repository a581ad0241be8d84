"""Prometheus metrics, on a registry of the app's own (no process globals).

Counters are bumped where things happen; queue gauges are read from the
store at scrape time, so they are never stale.

Under `wagate serve --workers N` every process writes its values to files in
the directory its supervisor made (prometheus-client's multiprocess mode,
PROMETHEUS_MULTIPROC_DIR), and /metrics, answered by any of them, adds up all
of them: counters and histograms summed over every process (restarted ones
included), queue gauges as last read, per-process gauges labelled by pid.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger("wagate.metrics")

# What /metrics answers with (Prometheus text exposition format 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_LATEST

Refresher = Callable[[], Awaitable[None]]


class Metrics:
    def __init__(self, multiprocess_dir: str | None = None) -> None:
        # Set only when prometheus-client was imported with this directory in
        # PROMETHEUS_MULTIPROC_DIR (the supervisor puts it in its children's
        # environment): then values live in files there, shared by the group.
        self.multiprocess_dir = multiprocess_dir
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.inbound_events = Counter(
            "wagate_inbound_events", "Inbound events by provider and kind (text, image, status)",
            ["provider", "kind"], registry=registry)
        self.provider_notices = Counter(
            "wagate_provider_notices", "Provider notices (account, template, quality, session "
            "states, ...) by provider and kind", ["provider", "kind"], registry=self.registry)
        self.inbound_duplicates = Counter(
            "wagate_inbound_duplicates", "Redelivered inbound events ignored", ["provider"],
            registry=registry)
        self.registrations = Counter(
            "wagate_registrations", "Registrations and opt-outs by locale",
            ["locale", "event"], registry=registry)  # event: registered | opted_out
        self.sends = Counter(
            "wagate_sends", "Send API requests by subscriber and outcome (queued or the error "
            "status, e.g. 469)", ["subscriber", "outcome"], registry=registry)
        self.outbound_results = Counter(
            "wagate_outbound_results", "Outbound attempts by provider and outcome "
            "(sent, retry, failed)", ["provider", "outcome"], registry=registry)
        self.deliveries = Counter(
            "wagate_webhook_deliveries", "Webhook delivery attempts by outcome "
            "(delivered, retry, failed, disabled, refused)", ["outcome"], registry=registry)
        self.media_fetches = Counter(
            "wagate_media_fetches", "Fetches of files users sent, by outcome "
            "(fetched, retry, failed)", ["outcome"], registry=registry)
        self.reloads = Counter(
            "wagate_reloads", "Config reloads by outcome (ok, refused)", ["outcome"],
            registry=registry)
        self.request_latency = Histogram(
            "wagate_http_request_duration_seconds", "HTTP request latency by route",
            ["method", "route", "status"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        # Read from the store by whichever process is scraped: the latest read counts.
        self.outbound_queue_depth = Gauge(
            "wagate_outbound_queue_depth", "Messages queued for sending", registry=registry,
            multiprocess_mode="mostrecent")
        self.outbound_oldest_age = Gauge(
            "wagate_outbound_queue_oldest_age_seconds", "Age of the oldest queued message",
            registry=registry, multiprocess_mode="mostrecent")
        self.delivery_queue_depth = Gauge(
            "wagate_webhook_queue_depth", "Webhook deliveries pending", registry=registry,
            multiprocess_mode="mostrecent")
        self.delivery_lag = Histogram(
            "wagate_webhook_delivery_lag_seconds", "From accepting what a webhook tells of "
            "(the inbound message, the status) to the subscriber's 2xx, retries included",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
        self.delivery_oldest_age = Gauge(
            "wagate_webhook_queue_oldest_age_seconds", "How long the oldest due webhook "
            "delivery has waited since it came due (0 when none waits; deliveries waiting "
            "out a retry delay are not due)", registry=registry, multiprocess_mode="mostrecent")
        self.auth_failures = Counter(
            "wagate_auth_failures", "Failed authentications by surface (admin_api, dashboard, "
            "portal, send_api)", ["surface"], registry=registry)
        self.auth_throttled = Counter(
            "wagate_auth_throttled", "Attempts answered 429 because their address failed too "
            "often, by surface", ["surface"], registry=registry)
        # ---- operations
        self.outbound_errors = Counter(
            "wagate_outbound_errors", "Outbound provider errors by provider and error code "
            "(\"none\" when the provider gave no code)", ["provider", "code"],
            registry=registry)
        self.window_resends = Counter(
            "wagate_window_resends", "Messages a provider refused as outside the 24-hour "
            "window, by provider, how it told (send, status) and what followed (template: "
            "sent again as the notification template; failed: none to send)",
            ["provider", "told_by", "result"], registry=registry)
        self.message_costs = Gauge(
            "wagate_message_costs", "Messages by subscriber and the provider's pricing "
            "category (\"none\" subscriber: the gateway's own replies)",
            ["subscriber", "category", "billable"], registry=registry,
            multiprocess_mode="mostrecent")  # read from the store: every process agrees
        # One per live process (labelled pid): a reload shows in each.
        self.config_generation = Gauge(
            "wagate_config_generation", "Config generation in force (1 at start, +1 per "
            "successful reload)", registry=registry, multiprocess_mode="liveall")
        self.config_loaded = Gauge(
            "wagate_config_loaded_timestamp_seconds", "When the config in force was loaded",
            registry=registry, multiprocess_mode="liveall")
        # ---- processes (several only under `wagate serve --workers N`)
        self.processes = Gauge(
            "wagate_processes", "Processes running, by role (http, drainers)", ["role"],
            registry=registry, multiprocess_mode="livesum")
        self._refreshers: list[Refresher] = []

    def add_refresher(self, refresh: Refresher) -> None:
        """Register a coroutine run at each scrape, e.g. to read a queue depth from
        the store, so gauges are never stale and cost nothing between scrapes."""
        self._refreshers.append(refresh)

    async def render(self) -> bytes:
        """Refresh the scrape-time gauges, then the whole registry as Prometheus text."""
        for refresh in self._refreshers:
            try:
                await refresh()
            except Exception as exc:  # a failing gauge must not hide the others
                log.warning("metrics: refreshing a gauge failed: %s", type(exc).__name__)
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        group = CollectorRegistry()
        MultiProcessCollector(group, path=self.multiprocess_dir)
        return generate_latest(group)

    def group_processes(self) -> dict[str, int]:
        """How many processes of this group run each role (http, drainers), read
        from the files of the live ones; {} outside a group."""
        if self.multiprocess_dir is None:
            return {}
        found: dict[str, int] = {}
        for family in MultiProcessCollector(None, path=self.multiprocess_dir).collect():
            if family.name == "wagate_processes":
                for sample in family.samples:
                    found[sample.labels["role"]] = int(sample.value)
        return found
