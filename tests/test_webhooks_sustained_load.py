"""Under sustained request load webhook deliveries still get their share: a
short burst of requests is answered first, but a delivery that has waited goes
out at its endpoint's full concurrency, and the lag from acceptance to
delivery shows in /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp.test_utils import TestClient

from bot.effects import DeliveryDraft
from bot.forwarding.payloads import new_delivery_id, standard_body
from bot.web.keys import inflight_key, store_key, webhook_worker_key
from bot.web.snapshot import holder_key
from tests.conftest import ADMIN, wait_for
from tests.test_operations import sample, scrape
from tests.webhook_helpers import Receiver, subscribers_toml

N = 40


async def test_deliveries_get_their_share_while_requests_never_stop(
        make_client: Callable[..., Awaitable[TestClient]], receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base))
    receiver.script("/acme", *[(200, {}, 0.1)] * N)  # a receiver that takes its time
    # A request still uploading its body the whole time: the service is never
    # idle, as under a steady stream of inbound messages.
    release = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"instance": 1, "from": "+34600000009",'
        await release.wait()
        yield b' "text": "still here"}'

    held = asyncio.create_task(client.post("/sandbox/inbound", headers=ADMIN, data=trickle()))
    await wait_for(lambda: client.app[inflight_key].count > 0)

    hook = client.app[holder_key].current.config.subscribers["acme"].webhooks[0]
    payload = standard_body("message.received", "2026-01-01T00:00:00.000Z",
                            {"from": "+34600000001", "text": "hello", "instance_id": 1})
    await client.app[store_key].add_deliveries(
        [DeliveryDraft(id=new_delivery_id(), subscriber_id="acme", endpoint_key=hook.key,
                       url=hook.url, format="standard", event_type="message.received",
                       payload=payload) for _ in range(N)], time.time())
    client.app[webhook_worker_key].notify()

    await wait_for(lambda: len(receiver.on("/acme")) == N, timeout=20)
    assert client.app[inflight_key].count > 0  # busy all along
    # The endpoint's full concurrency (8), not the few of a short burst.
    assert receiver.max_inflight == 8
    release.set()
    assert (await held).status == 200

    async def all_recorded() -> bool:
        got = await scrape(client)
        return sample(got, "wagate_webhook_delivery_lag_seconds_count") == N
    await wait_for(all_recorded)
    got = await scrape(client)
    assert sample(got, "wagate_webhook_queue_oldest_age_seconds") == 0  # nothing waits
    assert sample(got, "wagate_webhook_delivery_lag_seconds_bucket", le="+Inf") == N
