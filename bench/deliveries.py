"""(d) webhook drain rate and (f) memory with a large delivery backlog.

The backlog is written straight into the store while the service is down
(through the store's own `add_deliveries`), then the service starts and the
receiver counts what arrives.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import Bench, DrainMeter, get_json, peak_rss_mb


def prefill_deliveries(db: Path, count: int, url: str) -> None:
    from bot.config import WebhookConfig
    from bot.effects import DeliveryDraft
    from bot.store import SqliteStore

    key = WebhookConfig(url=url, format="standard").key

    async def go() -> None:
        store = await SqliteStore.open(str(db))
        try:
            now = time.time()
            for start in range(0, count, 10_000):
                drafts = []
                for i in range(start, min(count, start + 10_000)):
                    payload = json.dumps({"type": "message.received", "timestamp": now,
                                          "data": {"from": "+34600000001", "type": "text",
                                                   "text": f"backlog {i}"}})
                    drafts.append(DeliveryDraft(id=f"msg_{uuid.uuid4().hex}",
                                                subscriber_id="bench", endpoint_key=key,
                                                url=url, format="standard",
                                                event_type="message.received", payload=payload))
                await store.add_deliveries(drafts, now)
        finally:
            await store.close()
    asyncio.run(go())


def drain(bench: Bench, count: int, *, until_all: bool, max_seconds: float) -> dict[str, Any]:
    bench.stop("wagate")
    prefill_deliveries(bench.tmp / "wagate.db", count, bench.url("receiver", "/hook"))
    before = get_json(bench.url("receiver", "/count"))["count"]
    t0 = time.perf_counter()
    pid = bench.start_wagate()
    meter = DrainMeter(pid)
    rss_samples = []
    done = 0
    while True:
        done = get_json(bench.url("receiver", "/count"))["count"] - before
        meter.saw(done)
        rss_samples.append(peak_rss_mb(pid))
        elapsed = time.perf_counter() - t0
        if (until_all and done >= count) or elapsed > max_seconds:
            break
        time.sleep(0.25)
    elapsed = time.perf_counter() - t0
    return {"backlog": count, "delivered": done, "seconds": elapsed,
            "per_second": done / elapsed, "peak_rss_mb": peak_rss_mb(pid),
            "cpu_us": meter.cpu_us(),
            "rss_first_mb": rss_samples[0], "rss_last_mb": rss_samples[-1]}


def run_webhook_drains(bench: Bench, count: int) -> dict[str, Any]:
    """(d) to the HTTP receiver, then to each broker beside it."""
    d = bench.results["d"] = drain(bench, count, until_all=True, max_seconds=300)
    print(f"(d) webhook drain: {d['delivered']} in {d['seconds']:.1f} s = "
          f"{d['per_second']:.0f} deliveries/s, {d['cpu_us']:.0f} µs CPU/delivery "
          f"(peak RSS {d['peak_rss_mb']:.0f} MB)", flush=True)
    run_broker_drains(bench, count)
    return d


def run_delivery_benchmarks(bench: Bench) -> None:
    small = 20_000 if bench.quick else 50_000
    d = run_webhook_drains(bench, small)
    big = 100_000 if bench.quick else 500_000
    f = drain(bench, big, until_all=False, max_seconds=20 if bench.quick else 40)
    bench.results["f_backlog"] = f
    print(f"(f) with a backlog of {big}: peak RSS {f['peak_rss_mb']:.0f} MB "
          f"(small backlog: {d['peak_rss_mb']:.0f} MB); drained {f['delivered']} in "
          f"{f['seconds']:.0f} s meanwhile", flush=True)


def drain_broker(bench: Bench, kind: str, count: int, max_seconds: float = 300) -> dict[str, Any]:
    """(d) to a broker: the same backlog drained by a service whose webhook
    publishes to the local NATS, RabbitMQ or Redis (tests/brokers.py makes and
    removes the stream, exchange and queue); arrivals counted at the broker."""
    from bot.forwarding.destinations import without_password
    from tests.brokers import BROKERS, unreachable

    broker = BROKERS[kind]()
    why = unreachable(broker.address)
    if why is not None:
        print(f"(d) webhook drain to {kind}: not run, {why}", flush=True)
        return {"skipped": why}
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(broker.create())
        bench.stop("wagate")
        bench.webhook_url = broker.url()
        prefill_deliveries(bench.tmp / "wagate.db", count, without_password(broker.url())[0])
        t0 = time.perf_counter()
        pid = bench.start_wagate()
        meter = DrainMeter(pid)
        done = 0
        while done < count and time.perf_counter() - t0 < max_seconds:
            done = loop.run_until_complete(broker.stored())
            meter.saw(done)
            time.sleep(0.25)
        elapsed = time.perf_counter() - t0
        return {"backlog": count, "delivered": done, "seconds": elapsed,
                "per_second": done / elapsed, "cpu_us": meter.cpu_us(),
                "peak_rss_mb": peak_rss_mb(pid)}
    finally:
        if "wagate" in bench.procs:
            bench.stop("wagate")
        bench.webhook_url = ""
        loop.run_until_complete(broker.close())
        loop.close()
        bench.start_wagate()


def run_broker_drains(bench: Bench, count: int) -> None:
    """(d) per broker, beside HTTP's (bench.results["d"])."""
    from tests.brokers import BROKERS

    http = bench.results.get("d", {}).get("cpu_us")
    for kind in BROKERS:
        d = drain_broker(bench, kind, count)
        bench.results[f"d_{kind}"] = d
        if "skipped" not in d:
            print(f"(d) webhook drain to {kind}: {d['delivered']} in {d['seconds']:.1f} s = "
                  f"{d['per_second']:.0f} deliveries/s, {d['cpu_us']:.0f} µs CPU/delivery"
                  + (f" ({d['cpu_us'] / http:.0%} of HTTP's)" if http else ""), flush=True)
