"""Local webhook receivers for the webhook tests: real aiohttp servers on
loopback that record what arrives, verify Standard Webhooks signatures the way a
subscriber would (with the `standardwebhooks` package), and answer as scripted."""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from standardwebhooks import Webhook

from tests.conftest import ADMIN, wait_for

ACME_SECRET = "whsec_" + base64.b64encode(b"acme-signing-key-0123456789abcdef").decode()
BETA_SECRET = "whsec_" + base64.b64encode(b"beta-signing-key-0123456789abcdef").decode()
BETA_TOKEN = "beta-whatsmate-token"

# A script step: (status, headers, delay) or a callable building the response.
Step = tuple[int, dict[str, str], float] | Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str | None:
        return self.headers.get("webhook-id")


@dataclass
class Receiver:
    """Records every request; answers with the next scripted step per path, else 200."""

    hits: list[Hit] = field(default_factory=list)
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    base: str = ""
    inflight: int = 0
    max_inflight: int = 0

    def on(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def script(self, path: str, *steps: Step) -> None:
        self.scripts.setdefault(path, []).extend(steps)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.hits.append(Hit(request.path, {k.lower(): v for k, v in request.headers.items()},
                             body, asyncio.get_running_loop().time()))
        steps = self.scripts.get(request.path)
        step = steps.pop(0) if steps else (200, {}, 0.0)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if callable(step):
                return await step(request)
            status, headers, delay = step
            if delay:
                await asyncio.sleep(delay)
            return web.Response(status=status, text=f"answer {status}", headers=headers)
        finally:
            self.inflight -= 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def verify(hit: Hit, secret: str) -> Any:
    """What a subscriber does: check the signature, then trust the body."""
    return Webhook(secret).verify(hit.body, hit.headers)


def subscribers_toml(recv: str, *, acme_events: str = "", extra_webhooks: str = "",
                     webhooks: str = "") -> str:
    """acme (enterprise, dedicated instance 3, keyword ACME, standard webhook),
    beta (enterprise, keyword BETA, standard + whatsmate), gamma (trial: no
    inbound webhooks, keyword GAMMA)."""
    return textwrap.dedent(f"""
        [webhooks]
        timeout = 2
        retry_schedule = [0, 0.2, 0.4]
        allow_private_networks = ["127.0.0.0/8"]
        {webhooks}

        [[instances]]
        id = 3
        number = "+15550003333"
        provider = "sandbox"
        owner = "acme"

        [[subscribers]]
        id = "acme"
        client_id = "dev@acme.example"
        secret = "acme-api-secret"
        plan = "enterprise"
        since = 2025-01-01
        instances = [1]
        keyword = "ACME"

        [[subscribers.webhooks]]
        url = "{recv}/acme"
        format = "standard"
        secret = "{ACME_SECRET}"
        {acme_events}
        {extra_webhooks}

        [[subscribers]]
        id = "beta"
        client_id = "dev@beta.example"
        secret = "beta-api-secret"
        plan = "enterprise"
        since = 2025-01-01
        instances = [1]
        keyword = "BETA"

        [[subscribers.webhooks]]
        url = "{recv}/beta"
        format = "standard"
        secret = "{BETA_SECRET}"

        [[subscribers.webhooks]]
        url = "{recv}/beta-wm"
        format = "whatsmate"
        token = "{BETA_TOKEN}"

        [[subscribers]]
        id = "gamma"
        client_id = "dev@gamma.example"
        secret = "gamma-api-secret"
        plan = "trial"
        since = 2025-01-01
        instances = [1]
        keyword = "GAMMA"

        [[subscribers.webhooks]]
        url = "{recv}/gamma"
        format = "standard"
        secret = "{ACME_SECRET}"
    """)


async def deliveries(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    resp = await client.get("/admin/deliveries", headers=ADMIN,
                            params={k: str(v) for k, v in params.items()})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["deliveries"]


async def show(client: TestClient, delivery_id: str) -> dict[str, Any]:
    resp = await client.get(f"/admin/deliveries/{delivery_id}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["delivery"]


async def settled(client: TestClient, count: int, timeout: float = 10.0,
                  **params: Any) -> list[dict[str, Any]]:
    """Wait until `count` deliveries exist and none is pending."""
    async def done() -> list[dict[str, Any]] | None:
        rows = await deliveries(client, **params)
        if len(rows) >= count and all(d["status"] != "pending" for d in rows):
            return rows
        return None
    return await wait_for(done, timeout)


async def quiet(seconds: float = 0.3) -> None:
    """Give the deliverer a moment (used before asserting that nothing arrived)."""
    await asyncio.sleep(seconds)
