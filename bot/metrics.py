"""Prometheus metrics, on a registry of the app's own (no process globals).

Counters are bumped where things happen; queue gauges are read from the
store at scrape time, so they are never stale.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.inbound_events = Counter(
            "wagate_inbound_events", "Inbound events by provider and kind (text, image, status)",
            ["provider", "kind"], registry=registry)
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
        self.reloads = Counter(
            "wagate_reloads", "Config reloads by outcome (ok, refused)", ["outcome"],
            registry=registry)
        self.request_latency = Histogram(
            "wagate_http_request_duration_seconds", "HTTP request latency by route",
            ["method", "route", "status"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.outbound_queue_depth = Gauge(
            "wagate_outbound_queue_depth", "Messages queued for sending", registry=registry)
        self.outbound_oldest_age = Gauge(
            "wagate_outbound_queue_oldest_age_seconds", "Age of the oldest queued message",
            registry=registry)
        self.delivery_queue_depth = Gauge(
            "wagate_webhook_queue_depth", "Webhook deliveries pending", registry=registry)
