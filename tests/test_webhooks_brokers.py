"""Webhooks published to the local brokers (NATS JetStream, RabbitMQ, Redis
Streams), read back the way a subscriber's consumer reads them: the same
events and bodies as an HTTP endpoint gets, signed, with the broker's
de-duplication id; a broker that is down or lacks its stream, exchange or
subject leaves deliveries retrying and visible until it is back; passwords
never shown. Each run makes its own names (tests/brokers.py)."""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.config import ConfigError
from bot.config.load import load_config
from bot.effects import DeliveryDraft
from bot.forwarding.destinations import _check, without_password
from bot.forwarding.payloads import new_delivery_id, standard_body
from bot.web.keys import store_key, webhook_worker_key
from bot.web.snapshot import holder_key
from tests.brokers import BROKERS, Broker, Proxy, Received, require
from tests.conftest import ADMIN, base_config, say, wait_for
from tests.ui_helpers import ACME_LOGIN, login
from tests.webhook_helpers import ACME_SECRET, Hit, Receiver, deliveries, subscribers_toml, verify

MakeClient = Callable[..., Awaitable[TestClient]]
EVENTS = 1000
PATIENT = "retry_schedule = [0" + ", 0.3" * 60 + "]"  # retries for as long as a test runs


@pytest.fixture(params=sorted(BROKERS))
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    kind = BROKERS[request.param]
    require(kind.address, f"the {request.param} broker")
    made = kind()
    yield made
    await made.close()


def hook_toml(url: str, extra: str = "") -> str:
    return f"""
        [[subscribers.webhooks]]
        url = "{url}"
        format = "standard"
        secret = "{ACME_SECRET}"
        {extra}
    """


def with_broker(receiver: Receiver, url: str, *, patient: bool = False) -> str:
    toml = subscribers_toml(receiver.base, extra_webhooks=hook_toml(url))
    return toml.replace("retry_schedule = [0, 0.2, 0.4]", PATIENT) if patient else toml


async def broker_deliveries(client: TestClient, url: str) -> list[dict[str, Any]]:
    shown = without_password(url)[0]  # as the API shows it
    return [d for d in await deliveries(client, subscriber="acme", limit=1000)
            if d["endpoint"]["url"] == shown]


@pytest.mark.slow(seconds=10)  # 2,000 deliveries through real brokers and a receiver
async def test_a_thousand_events_each_signed_deduplicable_and_as_http_gets_them(
        make_client: MakeClient, receiver: Receiver, broker: Broker) -> None:
    await broker.create()
    client = await make_client(with_broker(receiver, broker.url()).replace(
        "timeout = 2", "timeout = 15\nmax_concurrency_per_endpoint = 64"))
    # Routing is the pipeline's (the tests below go through it); here the
    # events are queued as it queues them, for both endpoints, in one go.
    hooks = client.app[holder_key].current.config.subscribers["acme"].webhooks
    drafts = []
    for i in range(EVENTS):
        payload = standard_body("message.received", "2026-01-01T00:00:00.000Z",
                                {"from": "+34600000001", "text": f"event {i}", "instance_id": 3})
        drafts += [DeliveryDraft(id=new_delivery_id(), subscriber_id="acme",
                                 endpoint_key=hook.key, url=hook.url, format="standard",
                                 event_type="message.received", payload=payload)
                   for hook in hooks]
    await client.app[store_key].add_deliveries(drafts, time.time())
    client.app[webhook_worker_key].notify()

    # At least once: a publish that timed out on a loaded machine may be stored
    # twice where the broker has no de-duplication; a consumer keeps the first.
    got: dict[str, Received] = {}
    for _ in range(10):
        for msg in await broker.consume(EVENTS - len(got)):
            got.setdefault(msg.headers["webhook-id"], msg)
        if len(got) >= EVENTS:
            break
    assert len(got) == EVENTS
    await wait_for(lambda: len({h.webhook_id for h in receiver.on("/acme")}) >= EVENTS,
                   timeout=60)
    for msg in got.values():
        data = verify(Hit("", msg.headers, msg.body, 0.0), ACME_SECRET)  # over the exact body
        assert data["type"] == "message.received"
        if broker.name != "redis":  # Redis streams have no de-duplication id
            assert msg.dedup_id == msg.headers["webhook-id"]
    http_bodies = {h.webhook_id: h.body for h in receiver.on("/acme")}
    assert sorted(msg.body for msg in got.values()) == sorted(http_bodies.values())
    assert sorted(json.loads(b)["data"]["text"] for b in http_bodies.values()) == \
        sorted(f"event {i}" for i in range(EVENTS))


async def test_a_broker_that_is_down_keeps_deliveries_retrying_until_it_is_back(
        make_client: MakeClient, receiver: Receiver, broker: Broker) -> None:
    await broker.create()
    proxy = Proxy(broker.address)
    await proxy.open()
    url = broker.url(proxy.port)
    client = await make_client(with_broker(receiver, url, patient=True))
    await proxy.shut()  # the port closed
    for i in range(5):
        await say(client, f"while down {i}", sender="+34600000001", instance=3)

    async def all_retrying() -> list[dict[str, Any]] | None:
        rows = await broker_deliveries(client, url)
        ok = len(rows) == 5 and all(d["status"] == "pending" and d["attempts"] >= 2
                                    and d["last_error"] for d in rows)
        return rows if ok else None
    rows = await wait_for(all_retrying, timeout=15)
    assert all("refused" in d["last_error"].lower() or "connect" in d["last_error"].lower()
               for d in rows), [d["last_error"] for d in rows]
    await proxy.open()  # back, on the same port
    got = await broker.consume(5)
    assert sorted(verify(Hit("", m.headers, m.body, 0.0), ACME_SECRET)["data"]["text"]
                  for m in got) == [f"while down {i}" for i in range(5)]

    async def all_delivered() -> bool:
        rows = await broker_deliveries(client, url)
        return all(d["status"] == "delivered" for d in rows)
    await wait_for(all_delivered, timeout=10)
    await proxy.shut()


MISSING = {"nats": "no JetStream stream", "amqp": "exchange", "redis": "does not exist"}


async def test_a_missing_stream_exchange_or_subject_is_retried_until_it_exists(
        make_client: MakeClient, receiver: Receiver, broker: Broker) -> None:
    url = broker.missing_url()
    client = await make_client(with_broker(receiver, url, patient=True))
    for i in range(3):
        await say(client, f"nowhere yet {i}", sender="+34600000001", instance=3)

    async def all_retrying() -> list[dict[str, Any]] | None:
        rows = await broker_deliveries(client, url)
        ok = len(rows) == 3 and all(d["status"] == "pending" and d["attempts"] >= 2
                                    for d in rows)
        return rows if ok else None
    rows = await wait_for(all_retrying, timeout=15)
    # Each attempt failed visibly; the missing name is said (attempts in flight
    # together on AMQP may see the channel the broker closed instead).
    assert all(d["last_error"] for d in rows)
    assert any(MISSING[broker.name] in d["last_error"] for d in rows), \
        [d["last_error"] for d in rows]
    await broker.create()
    got = await broker.consume(3)
    assert sorted(verify(Hit("", m.headers, m.body, 0.0), ACME_SECRET)["data"]["text"]
                  for m in got) == [f"nowhere yet {i}" for i in range(3)]


async def test_amqp_unroutable_is_a_failed_attempt(make_client: MakeClient,
                                                   receiver: Receiver) -> None:
    made = BROKERS["amqp"]()
    require(made.address, "the amqp broker")
    try:
        await made.create()
        url = made.url().replace("routing_key=events", "routing_key=nobody")
        client = await make_client(with_broker(receiver, url))
        await say(client, "to nobody", sender="+34600000001", instance=3)

        async def failed() -> list[dict[str, Any]] | None:
            rows = await broker_deliveries(client, url)
            return rows if rows and rows[0]["status"] == "failed" else None
        rows = await wait_for(failed, timeout=10)
        assert "returned by the broker" in rows[0]["last_error"]
    finally:
        await made.close()


async def test_a_batch_arrives_whole_and_in_order_with_a_body_larger_than_a_frame(
        broker: Broker) -> None:
    """A batch is one write of many messages (RabbitMQ: frames the client
    would send one by one); a body past the protocol's frame size (128 KiB
    on RabbitMQ; webhook bodies are capped lower, but a broker must not rely
    on it) is split and arrives whole."""
    from bot.config import WebhookConfig
    from bot.forwarding.destinations import module_for
    from bot.forwarding.destinations.base import message_for

    await broker.create()
    url, password = without_password(broker.url())
    hook = WebhookConfig(url=url, format="standard", secret=ACME_SECRET, password=password)
    loopback = [ipaddress.ip_network("127.0.0.0/8")]
    dest = module_for(url).create(None, lambda: loopback)  # a broker needs no HTTP session
    texts = ["x" * 300_000, *(f"small {i}" for i in range(99))]
    messages = [message_for(hook, new_delivery_id(), json.dumps(
        {"type": "message.received", "data": {"text": text}})) for text in texts]
    try:
        outcomes = await dest.send_batch(hook, messages, 10.0)
    finally:
        await dest.close()
    assert [o.delivered for o in outcomes] == [True] * len(texts), outcomes[0]
    got = await broker.consume(len(texts))
    assert [m.body for m in got] == [m.body for m in messages]
    assert [verify(Hit("", m.headers, m.body, 0.0), ACME_SECRET)["data"]["text"]
            for m in got] == texts


PASSWORD = "pw-Zq8v3xK1-never-shown"


async def test_a_broker_password_is_never_shown(
        make_client: MakeClient, receiver: Receiver, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In the URL's userinfo or from `password_env`: not in a log line (at any
    level), an API answer, a page or /metrics, while attempts fail and are shown."""
    require(BROKERS["nats"].address, "the nats broker")
    monkeypatch.setenv("WAGATE_TEST_AMQP_PASSWORD", PASSWORD + "-env")
    closed = Proxy(("127.0.0.1", 4222))
    await closed.open()
    await closed.shut()  # a port nothing listens on: every attempt fails, logged
    nats_url = f"nats://wagate:{PASSWORD}@127.0.0.1:{closed.port}/wagate.secret"
    amqp_url = f"amqp://wagate@127.0.0.1:{closed.port}/?exchange=x&routing_key=k"
    toml = subscribers_toml(receiver.base, extra_webhooks=hook_toml(nats_url) + hook_toml(
        amqp_url, 'password_env = "WAGATE_TEST_AMQP_PASSWORD"'))
    caplog.set_level(logging.DEBUG)
    client = await make_client(toml)
    await say(client, "secret?", sender="+34600000001", instance=3)

    async def attempted() -> bool:
        rows = await deliveries(client, subscriber="acme")
        return len([d for d in rows if d["attempts"] >= 2]) >= 2
    await wait_for(attempted, timeout=10)
    shown = [await (await client.get(path, headers=ADMIN)).text()
             for path in ("/admin/deliveries?subscriber=acme", "/admin/endpoints",
                          "/admin/config", "/metrics")]
    for d in await deliveries(client, subscriber="acme"):
        shown.append(await (await client.get(f"/admin/deliveries/{d['id']}",
                                             headers=ADMIN)).text())
    assert any("nats://wagate@127.0.0.1" in text for text in shown)  # the URL, shown bare
    await login(client)
    for path in ("/ui/", "/ui/subscribers", "/ui/deliveries"):
        shown.append(await (await client.get(path)).text())
    client.session.cookie_jar.clear()
    await login(client, "/portal/", ACME_LOGIN)
    for path in ("/portal/", "/portal/deliveries"):
        shown.append(await (await client.get(path)).text())
    shown.append(caplog.text)
    for text in shown:
        assert PASSWORD not in text


def test_a_broker_whose_client_is_missing_is_refused_naming_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nats", None)  # as if nats-py were not installed
    _check.cache_clear()
    path = tmp_path / "wagate.toml"
    path.write_text(base_config(tmp_path / "w.db", extra=subscribers_toml(
        "http://127.0.0.1:9", extra_webhooks=hook_toml("nats://127.0.0.1:4222/x"))))
    try:
        with pytest.raises(ConfigError, match=r"wagate\[brokers\]"):
            load_config(path)
    finally:
        _check.cache_clear()


@pytest.mark.parametrize(("url", "says"), [
    ("nats://127.0.0.1:4222", "names one subject"),
    ("nats://127.0.0.1:4222/a.*", "names one subject"),
    ("amqp://127.0.0.1:5672/", "says where to publish"),
    ("amqp://127.0.0.1/?exchange=x&routing_key=k&durable=1", "unknown amqp URL parameter"),
    ("redis://127.0.0.1:6379/0", "names its stream"),
    ("redis://127.0.0.1:6379/0?stream=s&maxlen=-1", "maxlen"),
    ("redis://10.0.0.7:6379/0?stream=s", "private"),  # the address rules, as for HTTP
    ("nats://169.254.169.254/x", "link-local"),
    ("amqp://2130706433/?exchange=x", "not a canonical IPv4 address"),
    ("kafka://127.0.0.1:9092/topic", r"not an http\(s\), nats, amqp or redis URL"),
])
def test_a_broker_url_that_can_never_be_delivered_to_is_refused(
        tmp_path: Path, url: str, says: str) -> None:
    path = tmp_path / "wagate.toml"
    toml = subscribers_toml("http://127.0.0.1:9", extra_webhooks=hook_toml(url))
    path.write_text(base_config(tmp_path / "w.db", extra=toml))
    with pytest.raises(ConfigError, match=says):
        load_config(path)
