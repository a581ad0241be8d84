"""The deliveries admin API (filters, show, retry, replay, endpoints, bad input)
and the store's lease: a crashed worker's claims come back."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.effects import DeliveryDraft
from bot.forwarding.payloads import new_delivery_id
from bot.store import SqliteStore
from tests.conftest import ADMIN, say
from tests.webhook_helpers import Receiver, deliveries, settled, show, subscribers_toml

U = "+34600000001"


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


async def test_list_filters_show_and_retry(client: TestClient, receiver: Receiver) -> None:
    receiver.script("/acme", *[(500, {}, 0.0)] * 3)
    await say(client, "one", sender=U, instance=3)
    await settled(client, 1)
    await say(client, "two", sender=U, instance=3)
    rows = await settled(client, 2)
    assert [r["status"] for r in rows] == ["delivered", "failed"]  # newest first
    failed = await deliveries(client, status="failed")
    assert len(failed) == 1 and failed[0]["last_status_code"] == 500
    key = failed[0]["endpoint"]["key"]
    assert len(await deliveries(client, endpoint=key)) == 2
    assert await deliveries(client, subscriber="beta") == []
    assert len(await deliveries(client, limit=1)) == 1
    d = await show(client, failed[0]["id"])
    assert [a["outcome"] for a in d["attempt_log"]] == ["retry", "retry", "failed"]
    assert d["payload"]["type"] == "message.received"
    resp = await client.post(f"/admin/deliveries/{d['id']}/retry", headers=ADMIN)
    assert resp.status == 200
    rows = await settled(client, 2)
    assert {r["status"] for r in rows} == {"delivered"}
    d = await show(client, d["id"])
    assert d["attempts"] == 1 and len(d["attempt_log"]) == 4  # the log keeps every attempt


async def test_bad_input_and_auth(client: TestClient) -> None:
    for method, path in [("GET", "/admin/deliveries"), ("GET", "/admin/deliveries/x"),
                         ("POST", "/admin/deliveries/x/retry"),
                         ("POST", "/admin/deliveries/replay?since=0"),
                         ("GET", "/admin/endpoints"), ("POST", "/admin/endpoints/x/enable")]:
        resp = await client.request(method, path)
        assert resp.status == 401, path
        assert (await resp.json())["error"] == "unauthorized"
    cases = [
        ("GET", "/admin/deliveries?status=lost", 400, "invalid_status"),
        ("GET", "/admin/deliveries?limit=many", 400, "invalid_query"),
        ("GET", "/admin/deliveries/msg_nope", 404, "unknown_delivery"),
        ("POST", "/admin/deliveries/msg_nope/retry", 404, "unknown_delivery"),
        ("POST", "/admin/deliveries/replay", 400, "missing_since"),
        ("POST", "/admin/deliveries/replay?since=yesterday", 400, "invalid_since"),
        ("POST", "/admin/endpoints/0000/enable", 404, "unknown_endpoint"),
    ]
    for method, path, status, slug in cases:
        resp = await client.request(method, path, headers=ADMIN)
        assert resp.status == status, (path, await resp.text())
        assert (await resp.json())["error"] == slug


async def test_replay_since_epoch_and_iso(client: TestClient, receiver: Receiver) -> None:
    receiver.script("/acme", *[(500, {}, 0.0)] * 6)
    await say(client, "a", sender=U, instance=3)
    await settled(client, 1)
    cut = time.time()
    await say(client, "b", sender=U, instance=3)
    await settled(client, 2)
    resp = await client.post("/admin/deliveries/replay", headers=ADMIN,
                             params={"since": str(cut), "subscriber": "acme"})
    assert (await resp.json())["replayed"] == 1
    rows = await settled(client, 2)
    assert sorted(r["status"] for r in rows) == ["delivered", "failed"]
    resp = await client.post("/admin/deliveries/replay", headers=ADMIN,
                             params={"since": "2020-01-01"})
    body = await resp.json()
    assert body["replayed"] == 1 and body["since"] == "2020-01-01T00:00:00.000Z"


async def test_endpoints_list_never_shows_secrets(client: TestClient) -> None:
    resp = await client.get("/admin/endpoints", headers=ADMIN)
    endpoints = (await resp.json())["endpoints"]
    assert {(e["subscriber"], e["format"], e["status"]) for e in endpoints} == {
        ("acme", "standard", "ok"), ("beta", "standard", "ok"), ("beta", "whatsmate", "ok"),
        ("gamma", "standard", "ok")}
    text = str(endpoints)
    assert "whsec_" not in text and "beta-whatsmate-token" not in text


async def test_expired_leases_come_back(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "lease.db"))
    try:
        now = time.time()
        draft = DeliveryDraft(id=new_delivery_id(), subscriber_id="acme", endpoint_key="k",
                              url="http://x", format="standard", event_type="message.received",
                              payload="{}")
        await store.add_deliveries([draft], now)
        first = await store.claim_deliveries(now, 10, lease=5.0)
        assert [d.id for d in first] == [draft.id]
        assert await store.claim_deliveries(now + 1, 10, lease=5.0) == []  # leased
        again = await store.claim_deliveries(now + 6, 10, lease=5.0)  # the worker died
        assert [d.id for d in again] == [draft.id]
        assert await store.claim_deliveries(now + 12, 10, 5.0, exclude=[("acme", "k")]) == []
        await store.release_delivery_claims()
        assert len(await store.claim_deliveries(now + 7, 10, lease=5.0)) == 1
    finally:
        await store.close()


async def test_endpoint_answering_every_delivery_stays_ok(client: TestClient,
                                                          receiver: Receiver) -> None:
    # Deliveries succeeding within a second of each other once marked a healthy
    # endpoint "failing": health must follow what happened, not a write throttle.
    receiver.script("/acme", *[(204, {}, 0.0)] * 4)
    for n in range(4):
        await say(client, f"message {n}", sender=U, instance=3)
        await settled(client, n + 1)
    assert [h.path for h in receiver.hits] == ["/acme"] * 4
    resp = await client.get("/admin/endpoints", headers=ADMIN)
    acme = next(e for e in (await resp.json())["endpoints"] if e["subscriber"] == "acme")
    assert acme["status"] == "ok" and acme["failing_since"] is None
