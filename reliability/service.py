"""The real service for the reliability suites: `wagate serve` in a subprocess
on the meta provider, beside bench's local Graph-shaped server and webhook
receiver (bench/servers.py), all on loopback. Process handling is bench's
(`Bench.start`, `stop`, `url`, `start_wagate`); only the config differs: an
enterprise subscriber `acme` owning the meta number, so every inbound message
is forwarded to its standard webhook, and a second subscriber `other`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.__main__ import Bench
from reliability.common import ROOT, free_port

APP_SECRET = "reliability-app-secret"
PNID = "100000000000001"
GATEWAY = "+15550001111"
ADMIN_TOKEN = "reliability-admin-token"
ACME_ID = "dev@acme.example"
ACME_SECRET = "acme-secret-0123456789"
OTHER_ID = "dev@other.example"
OTHER_SECRET = "other-secret-9876543210"
WEBHOOK_SECRET = "whsec_" + "cmVsaWFiaWxpdHktd2ViaG9vay1zZWNyZXQtMDEyMzQ1"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ACME = {"X-WM-CLIENT-ID": ACME_ID, "X-WM-CLIENT-SECRET": ACME_SECRET}
META_INSTANCE = 1
SANDBOX_INSTANCE = 2


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """Meta's X-Hub-Signature-256 of `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def meta_text(sender: str, text: str, msg_id: str) -> dict[str, Any]:
    """A Cloud API webhook payload: one text message from `sender` (digits)."""
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": GATEWAY.lstrip("+"), "phone_number_id": PNID},
            "contacts": [{"profile": {"name": "Rel"}, "wa_id": sender}],
            "messages": [{"from": sender, "id": msg_id, "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}]}}]}]}


class Service(Bench):
    """wagate, graph and receiver as subprocesses; `tmp` holds their logs and the db."""

    def config(self, rate: float = 1000.0) -> Path:
        text = textwrap.dedent(f"""
            [server]
            host = "127.0.0.1"
            port = {self.ports['wagate']}
            [storage]
            url = "sqlite:///{self.tmp / 'wagate.db'}"
            [admin]
            token = "{ADMIN_TOKEN}"
            [locales]
            dir = "{ROOT / 'locales'}"
            [meta]
            app_secret = "{APP_SECRET}"
            verify_token = "reliability-verify"
            access_token = "reliability-access"
            graph_base_url = "{self.url('graph')}"
            [outbound]
            rate_per_second = {rate}
            [webhooks]
            timeout = 5
            allow_private_networks = ["127.0.0.0/8"]
            # Quotas out of the way: a fuzz run must not use up the send that follows it.
            [plans.enterprise]
            messages_per_day = 1000000000
            max_recipients = 10000000
            [[instances]]
            id = {META_INSTANCE}
            number = "{GATEWAY}"
            provider = "meta"
            phone_number_id = "{PNID}"
            owner = "acme"
            [[instances]]
            id = {SANDBOX_INSTANCE}
            number = "+15550002222"
            provider = "sandbox"
            [[subscribers]]
            id = "acme"
            client_id = "{ACME_ID}"
            secret = "{ACME_SECRET}"
            plan = "enterprise"
            instances = [{META_INSTANCE}, {SANDBOX_INSTANCE}]
            [[subscribers.webhooks]]
            url = "{self.url('receiver', '/hook')}"
            format = "standard"
            secret = "{WEBHOOK_SECRET}"
            [[subscribers]]
            id = "other"
            client_id = "{OTHER_ID}"
            secret = "{OTHER_SECRET}"
            plan = "enterprise"
            instances = [{SANDBOX_INSTANCE}]
        """)
        path = self.tmp / "wagate.toml"
        path.write_text(text)
        return path

    def start_all(self) -> None:
        for name in ("graph", "receiver", "wagate"):
            self.ports[name] = free_port()
        for name in ("graph", "receiver"):
            self.start(name, [sys.executable, "-m", "bench.servers", name,
                              str(self.ports[name])], self.url(name, "/count"))
        self.start_wagate()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def log_tail(self, lines: int = 20) -> str:
        path = self.tmp / "wagate.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) \
            if path.exists() else ""


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
