"""The real service for the reliability suites: `wagate serve` in a subprocess
on the meta provider, beside bench's local Graph-shaped server and webhook
receiver (bench/servers.py), all on loopback. Process handling and the config
are bench's: the subscriber `bench` owns the meta number (instance 1), so every
inbound message is forwarded to its standard webhook, on a plan with
enterprise's inbound webhooks and quotas out of the way (a fuzz run must not
use up the send that follows it). Added here: a sandbox number it also owns
(instance 2) and a second subscriber, `other`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import (
    ADMIN_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    Bench,
)
from reliability.common import free_port

OTHER_ID = "dev@other.example"
OTHER_SECRET = "other-secret-9876543210"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLIENT = {"X-WM-CLIENT-ID": CLIENT_ID, "X-WM-CLIENT-SECRET": CLIENT_SECRET}
META_INSTANCE = 1
SANDBOX_INSTANCE = 2
EXTRA_CONFIG = textwrap.dedent(f"""
    [[instances]]
    id = {SANDBOX_INSTANCE}
    number = "+15550002222"
    provider = "sandbox"
    owner = "bench"
    [[subscribers]]
    id = "other"
    client_id = "{OTHER_ID}"
    secret = "{OTHER_SECRET}"
    plan = "enterprise"
""")


class Service(Bench):
    """wagate, graph and receiver as subprocesses; `tmp` holds their logs and the db."""

    def config(self, rate: float = 80.0) -> Path:
        path = super().config(rate)
        path.write_text(path.read_text() + EXTRA_CONFIG)
        return path

    def start_all(self) -> None:
        for name in ("graph", "receiver", "wagate"):
            self.ports[name] = free_port()
        for name in ("graph", "receiver"):
            self.start(name, [sys.executable, "-m", "bench.servers", name,
                              str(self.ports[name])], self.url(name, "/count"))
        self.start_wagate(rate=1000.0)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


async def get_json(session: aiohttp.ClientSession, url: str,
                   headers: dict[str, str] | None = None) -> Any:
    async with session.get(url, headers=headers) as resp:
        resp.raise_for_status()
        return json.loads(await resp.read())


async def queue_depths(session: aiohttp.ClientSession, service: Service) -> tuple[float, float]:
    """(outbound messages, webhook deliveries) still queued, from /metrics."""
    async with session.get(service.url("wagate", "/metrics")) as resp:
        text = await resp.text()
    depths = []
    for name in ("wagate_outbound_queue_depth", "wagate_webhook_queue_depth"):
        match = re.search(rf"^{name} ([\d.e+]+)$", text, re.M)
        if match is None:
            raise RuntimeError(f"{name} is missing from /metrics")
        depths.append(float(match.group(1)))
    return depths[0], depths[1]


SETTLE_WITHIN = 60.0


async def settle(session: aiohttp.ClientSession, service: Service) -> None:
    """Wait until nothing is queued and the peers' counts stop moving."""
    deadline = time.monotonic() + SETTLE_WITHIN
    last: tuple[Any, ...] = ()
    while time.monotonic() < deadline:
        now = (await queue_depths(session, service),
               (await get_json(session, service.url("graph", "/count")))["count"],
               (await get_json(session, service.url("receiver", "/count")))["count"])
        if now[0] == (0.0, 0.0) and now == last:
            return
        last = now
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the service did not settle within {SETTLE_WITHIN:.0f} s: {last}")
