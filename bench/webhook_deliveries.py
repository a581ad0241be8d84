"""Measure webhook deliveries per second to a local receiver.

    .venv/bin/python -m bench.webhook_deliveries [--n 5000] [--endpoints 1] [--concurrency 8]

Starts a receiver (aiohttp, 200 OK) in a subprocess, then the real app on a
temporary SQLite file; queues N signed `message.received` deliveries through
the store in one transaction and times the deliverer until none is pending.
Inbound HTTP is left out: this measures the deliverer alone.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from aiohttp import web

from bot.app import create_app
from bot.config.load import load_config
from bot.effects import DeliveryDraft
from bot.forwarding.payloads import new_delivery_id, standard_body
from bot.web.keys import store_key, webhook_worker_key

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + base64.b64encode(b"bench-signing-key-0123456789abcdef").decode()
RECEIVER = """
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text="ok")
app = web.Application()
app.router.add_post("/{tail:.*}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main(n: int, endpoints: int, concurrency: int) -> None:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])  # noqa: ASYNC220
    tmp = Path(tempfile.mkdtemp(prefix="wagate-bench-"))
    hooks = "".join(textwrap.dedent(f"""
        [[subscribers.webhooks]]
        url = "http://127.0.0.1:{port}/hook{i}"
        secret = "{SECRET}"
    """) for i in range(endpoints))
    (tmp / "wagate.toml").write_text(textwrap.dedent(f"""
        [storage]
        url = "sqlite:///{tmp / 'wagate.db'}"
        [admin]
        token = "bench-admin-token"
        [locales]
        dir = "{ROOT / 'locales'}"
        [webhooks]
        allow_private_networks = ["127.0.0.0/8"]
        max_concurrency_per_endpoint = {concurrency}
        [[instances]]
        id = 1
        number = "+15550001111"
        owner = "acme"
        [[subscribers]]
        id = "acme"
        client_id = "acme"
        secret = "acme-api-secret"
        plan = "enterprise"
        since = 2025-01-01
    """) + hooks)
    config = load_config(tmp / "wagate.toml")
    runner = web.AppRunner(create_app(config))
    await runner.setup()  # runs the cleanup contexts: store, workers
    app = runner.app
    try:
        await asyncio.sleep(0.5)  # the receiver starts
        store = app[store_key]
        sub = config.subscribers["acme"]
        payload = standard_body("message.received", "2026-01-01T00:00:00.000Z", {
            "from": "+34600000001", "text": "x" * 100, "instance_id": 1})
        drafts = [DeliveryDraft(id=new_delivery_id(), subscriber_id="acme",
                                endpoint_key=sub.webhooks[i % endpoints].key,
                                url=sub.webhooks[i % endpoints].url, format="standard",
                                event_type="message.received", payload=payload)
                  for i in range(n)]
        app[webhook_worker_key].stop()  # queue all first, then time the drain
        await asyncio.sleep(0.2)
        await store.add_deliveries(drafts, time.time())
        worker = app[webhook_worker_key]
        worker._stopping = False  # restart the loop on the same worker
        task = asyncio.create_task(worker.run())
        start = time.perf_counter()
        while await store.delivery_queue_depth():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        delivered = len(await store.list_deliveries(status="delivered", subscriber_id=None,
                                                    endpoint_key=None, limit=n))
        print(f"{delivered}/{n} delivered in {elapsed:.2f}s: {delivered / elapsed:.0f} "
              f"deliveries/s ({endpoints} endpoint(s), {concurrency} concurrent each)")
        worker.stop()
        await task
    finally:
        await runner.cleanup()
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.endpoints, args.concurrency))
