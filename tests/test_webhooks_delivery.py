"""Delivery semantics against real receivers on loopback: retries on the
configured schedule, Retry-After, timeouts, dropped connections, 3xx, 410,
disabling after failing too long, a receiver down for a while, per-endpoint
concurrency, and the refusal of private addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.forwarding.safety import GuardedResolver, RefusedAddress
from tests.conftest import ADMIN, say, wait_for
from tests.webhook_helpers import (
    ACME_SECRET,
    Receiver,
    deliveries,
    quiet,
    settled,
    show,
    subscribers_toml,
    verify,
)

U = "+34600000001"
MakeClient = Callable[..., Awaitable[TestClient]]


async def only_delivery(client: TestClient) -> dict[str, Any]:
    rows = await settled(client, 1)
    assert len(rows) == 1
    return await show(client, rows[0]["id"])


def outcomes(delivery: dict[str, Any]) -> list[str]:
    return [a["outcome"] for a in delivery["attempt_log"]]


async def test_500_then_success_keeps_the_webhook_id(make_client: MakeClient,
                                                     receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base))
    receiver.script("/acme", (500, {}, 0.0))
    await say(client, "order 66", sender=U, instance=3)
    d = await only_delivery(client)
    assert d["status"] == "delivered" and d["attempts"] == 2
    assert outcomes(d) == ["retry", "delivered"]
    first, second = d["attempt_log"]
    assert first["status_code"] == 500 and first["response_body"] == "answer 500"
    assert first["error"] == "HTTP 500" and first["latency_ms"] >= 0
    assert second["status_code"] == 200
    hits = receiver.on("/acme")
    assert len(hits) == 2 and hits[0].webhook_id == hits[1].webhook_id == d["id"]
    assert hits[0].body == hits[1].body
    for hit in hits:  # each attempt is signed afresh, and verifies
        assert verify(hit, ACME_SECRET)["data"]["text"] == "order 66"
    assert d["payload"]["data"]["text"] == "order 66"


async def test_retries_exhausted_then_replayed(make_client: MakeClient,
                                               receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base))
    receiver.script("/acme", *[(503, {}, 0.0)] * 3)
    await say(client, "lost?", sender=U, instance=3)
    d = await only_delivery(client)
    assert d["status"] == "failed" and outcomes(d) == ["retry", "retry", "failed"]
    assert len(receiver.on("/acme")) == 3  # retry_schedule has 3 entries: 3 attempts
    gaps = [b.at - a.at for a, b in zip(receiver.hits, receiver.hits[1:], strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # the schedule, plus jitter
    failed = await deliveries(client, status="failed", subscriber="acme")
    assert [x["id"] for x in failed] == [d["id"]]
    # Replay everything failed since a minute ago (ISO), with the same webhook-id.
    resp = await client.post("/admin/deliveries/replay", headers=ADMIN,
                             params={"since": "2000-01-01T00:00:00Z"})
    assert resp.status == 200 and (await resp.json())["replayed"] == 1
    d = await only_delivery(client)
    assert d["status"] == "delivered" and outcomes(d)[-1] == "delivered"
    assert {h.webhook_id for h in receiver.on("/acme")} == {d["id"]}


async def test_retry_after_is_honoured(make_client: MakeClient, receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base))
    receiver.script("/acme", (429, {"Retry-After": "1"}, 0.0))
    await say(client, "slow down", sender=U, instance=3)
    d = await only_delivery(client)
    assert outcomes(d) == ["retry", "delivered"]
    first, second = receiver.on("/acme")
    assert second.at - first.at >= 1.0  # not the schedule's 0.2 s


async def test_timeout(make_client: MakeClient, receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base).replace(
        "timeout = 2", "timeout = 0.3"))
    receiver.script("/acme", (200, {}, 1.5))
    await say(client, "are you there", sender=U, instance=3)
    d = await only_delivery(client)
    assert outcomes(d) == ["retry", "delivered"]
    assert "timed out after 0.3s" in d["attempt_log"][0]["error"]
    assert d["attempt_log"][0]["status_code"] is None


async def test_connection_closed(make_client: MakeClient, receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base))

    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        raise ConnectionResetError

    receiver.script("/acme", hang_up)
    await say(client, "drop it", sender=U, instance=3)
    d = await only_delivery(client)
    assert outcomes(d) == ["retry", "delivered"]
    assert d["attempt_log"][0]["error"]  # e.g. ServerDisconnectedError


async def test_redirect_is_a_failure_and_not_followed(make_client: MakeClient,
                                                      receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base))
    receiver.script("/acme", (302, {"Location": f"{receiver.base}/elsewhere"}, 0.0))
    await say(client, "moved?", sender=U, instance=3)
    d = await only_delivery(client)
    assert outcomes(d) == ["retry", "delivered"]
    assert d["attempt_log"][0]["status_code"] == 302
    assert "redirects are not followed" in d["attempt_log"][0]["error"]
    assert not receiver.on("/elsewhere")


async def test_410_disables_the_endpoint_until_enabled(make_client: MakeClient,
                                                       receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base))
    receiver.script("/acme", (410, {}, 0.0))
    await say(client, "first", sender=U, instance=3)
    d = await only_delivery(client)
    assert d["status"] == "failed" and outcomes(d) == ["disabled"]
    resp = await client.get("/admin/endpoints", headers=ADMIN)
    acme = next(e for e in (await resp.json())["endpoints"] if e["subscriber"] == "acme")
    assert acme["status"] == "disabled" and "410" in acme["disabled_reason"]
    assert acme["configured"] and "secret" not in str(acme).lower().replace("whsec", "")
    # New messages for a disabled endpoint are recorded, failed, never sent.
    await say(client, "second", sender=U, instance=3)
    rows = await settled(client, 2)
    assert rows[0]["status"] == "failed" and "endpoint disabled" in rows[0]["last_error"]
    await quiet()
    assert len(receiver.on("/acme")) == 1
    # Enable it again, replay what failed: both arrive.
    resp = await client.post(f"/admin/endpoints/{acme['key']}/enable", headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["enabled"] == 1
    resp = await client.post("/admin/deliveries/replay", headers=ADMIN,
                             params={"since": "0"})
    assert (await resp.json())["replayed"] == 2
    await wait_for(lambda: len(receiver.on("/acme")) == 3)
    rows = await settled(client, 2)
    assert {r["status"] for r in rows} == {"delivered"}


async def test_endpoint_failing_too_long_is_disabled(make_client: MakeClient,
                                                     receiver: Receiver) -> None:
    # disable_after_days = 0.00001: 0.864 s of failing.
    client = await make_client(subscribers_toml(
        receiver.base, webhooks="disable_after_days = 0.00001").replace(
        "retry_schedule = [0, 0.2, 0.4]", "retry_schedule = [0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]"))
    receiver.script("/acme", *[(500, {}, 0.0)] * 20)
    await say(client, "anyone?", sender=U, instance=3)
    d = await only_delivery(client)
    assert d["status"] == "failed" and 3 <= d["attempts"] < 7
    resp = await client.get("/admin/endpoints", headers=ADMIN)
    acme = next(e for e in (await resp.json())["endpoints"] if e["subscriber"] == "acme")
    assert acme["status"] == "disabled" and acme["disabled_reason"].startswith("failing for")


async def test_receiver_down_for_a_while(make_client: MakeClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recv = Receiver(base=f"http://127.0.0.1:{port}")
    client = await make_client(subscribers_toml(recv.base).replace(
        "retry_schedule = [0, 0.2, 0.4]", "retry_schedule = [0, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3]"))
    await say(client, "knock knock", sender=U, instance=3)
    await wait_for(lambda: _attempted(client, 2))
    runner = web.AppRunner(recv.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        d = await only_delivery(client)
        assert d["status"] == "delivered" and outcomes(d)[-1] == "delivered"
        assert "cannot connect" in d["attempt_log"][0]["error"]
        assert [h.json["data"]["text"] for h in recv.on("/acme")] == ["knock knock"]
    finally:
        await runner.cleanup()


async def _attempted(client: TestClient, n: int) -> bool:
    rows = await deliveries(client)
    return bool(rows) and rows[0]["attempts"] >= n


async def test_per_endpoint_concurrency_and_no_head_of_line_blocking(
        make_client: MakeClient, receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(
        receiver.base, webhooks="max_concurrency_per_endpoint = 2"))
    receiver.script("/acme", *[(200, {}, 0.3)] * 8)
    for i in range(8):
        await say(client, f"m{i}", sender=U, instance=3)
    # beta's endpoint is not held up behind acme's slow one.
    from tests.test_webhooks_routing import sent_by
    await sent_by(client, "beta", to="+34600000009")
    await say(client, "quick", sender="+34600000009")
    await wait_for(lambda: receiver.on("/beta"), timeout=1.0)
    assert len(receiver.on("/acme")) < 8
    await settled(client, 10)
    assert len(receiver.on("/acme")) == 8
    assert receiver.max_inflight <= 3  # 2 for acme (+1 for beta's)


async def test_private_addresses_are_refused(make_client: MakeClient,
                                             receiver: Receiver) -> None:
    port = receiver.base.rsplit(":", 1)[1]
    toml = subscribers_toml(f"http://localhost:{port}").replace(
        'allow_private_networks = ["127.0.0.0/8"]', "allow_private_networks = []")
    client = await make_client(toml)
    await say(client, "to localhost", sender=U, instance=3)
    d = await only_delivery(client)
    assert d["status"] == "failed" and outcomes(d) == ["refused"]
    assert "localhost resolves to" in d["attempt_log"][0]["error"]
    assert "loopback" in d["attempt_log"][0]["error"]
    assert receiver.hits == []


# ------------------------------------------------------------------ the resolver
# (every spelling of an address, and the rules: tests/test_webhooks_ssrf.py)


async def test_guarded_resolver_checks_what_a_name_resolves_to() -> None:
    from aiohttp.abc import AbstractResolver, ResolveResult

    class Fixed(AbstractResolver):
        def __init__(self, *hosts: str) -> None:
            self.hosts = hosts

        async def resolve(self, host: str, port: int = 0,
                          family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
            return [{"hostname": host, "host": h, "port": port, "family": family, "proto": 0,
                     "flags": 0} for h in self.hosts]

        async def close(self) -> None:
            return None

    mixed = GuardedResolver(lambda: (), Fixed("10.0.0.5", "93.184.216.34"))
    assert [r["host"] for r in await mixed.resolve("rebind.example", 443)] == ["93.184.216.34"]
    sneaky = GuardedResolver(lambda: (), Fixed("169.254.169.254"))
    with pytest.raises(RefusedAddress, match=re.escape("169.254.169.254 (link-local)")):
        await sneaky.resolve("metadata.example", 80)
    allowed = GuardedResolver(lambda: (ipaddress.ip_network("169.254.0.0/16"),),
                              Fixed("169.254.169.254"))
    assert len(await allowed.resolve("metadata.example", 80)) == 1
    await asyncio.gather(mixed.close(), sneaky.close(), allowed.close())
