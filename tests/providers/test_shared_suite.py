"""The promises every provider keeps, end to end over real local servers:
greeting -> localized confirmation; text, image, document and group sends;
statuses; inbound -> subscriber webhook; duplicates ignored; bad signatures
refused; malformed bodies -> 4xx, never 5xx. One suite, run per provider
through its adapter (tests/providers/adapters.py)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.config import Config
from tests.conftest import ADMIN, wait_for, wait_sent
from tests.providers.adapters import ADAPTERS, INSTANCE, Adapter, Sent
from tests.send_helpers import ACME, JPEG, PDF, b64, send
from tests.test_registration import REGISTERED, expected
from tests.webhook_helpers import ACME_SECRET, Receiver, quiet, verify

USER = "+34600000001"
_ids = itertools.count(1)


def acme(receiver: str) -> str:
    """acme: enterprise, owns instance 5, one standard webhook for every event."""
    return (f'\n[webhooks]\ntimeout = 2\nretry_schedule = [0, 0.2]\n'
            f'allow_private_networks = ["127.0.0.0/8"]\n'
            f'\n[[subscribers]]\nid = "acme"\nclient_id = "dev@acme.example"\n'
            f'secret = "acme-secret"\nplan = "enterprise"\nsince = 2025-01-01\n'
            f'instances = [{INSTANCE}]\n'
            f'\n[[subscribers.webhooks]]\nurl = "{receiver}/acme"\nformat = "standard"\n'
            f'secret = "{ACME_SECRET}"\n')


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return ADAPTERS[request.param]()


@pytest.fixture
async def pclient(adapter: Adapter, aiohttp_server: Callable[..., Awaitable[TestServer]],
                  aiohttp_client: Callable[..., Awaitable[TestClient]], graph: TestServer,
                  make_config: Callable[..., Config], receiver: Receiver) -> TestClient:
    async def server(app: web.Application) -> TestServer:
        return await aiohttp_server(app)

    section = await adapter.start(server, graph)
    return await aiohttp_client(create_app(make_config(section + acme(receiver.base))))


def msg_id() -> str:
    return f"suite.{next(_ids)}"


async def sent(adapter: Adapter, client: TestClient, count: int) -> list[Sent]:
    await wait_sent(client)
    return await wait_for(lambda: _at_least(adapter, client, count))


async def _at_least(adapter: Adapter, client: TestClient, count: int) -> list[Sent] | None:
    out = await adapter.sent(client)
    return out if len(out) >= count else None


async def register(adapter: Adapter, client: TestClient) -> None:
    resp = await adapter.inject(client, "Hi", sender=USER, msg_id=msg_id())
    assert resp.status == 200, await resp.text()
    await sent(adapter, client, 1)


async def test_greeting_gets_a_localized_confirmation(adapter: Adapter,
                                                      pclient: TestClient) -> None:
    resp = await adapter.inject(pclient, "Hola", sender=USER, msg_id=msg_id())
    assert resp.status == 200, await resp.text()
    out = await sent(adapter, pclient, 1)
    assert out == [Sent(chat=adapter.chat(USER), kind="text", text=expected("es", REGISTERED))]


async def test_text_image_document_and_group_sends(adapter: Adapter,
                                                   pclient: TestClient) -> None:
    await register(adapter, pclient)
    sends = [("single", "text", {"number": USER, "message": "Your order shipped"}),
             ("single", "image", {"number": USER, "image": b64(JPEG), "caption": "Look"}),
             ("single", "document", {"number": USER, "document": b64(PDF),
                                     "filename": "invoice.pdf"})]
    confirmations = 1
    if adapter.groups:
        group = (adapter.group_id(), "Team Rocket")
        resp = await adapter.inject(pclient, "Hi", sender=USER, msg_id=msg_id(), group=group)
        assert resp.status == 200, await resp.text()
        confirmations = 2
        await sent(adapter, pclient, confirmations)
        group_name = group[1] if adapter.names_groups else group[0]
        sends.append(("group", "text", {"group_name": group_name, "message": "Hello team"}))
    else:  # refused before anything is queued, saying why
        resp = await send(pclient, "group", "text", {"group_name": "Team", "message": "x"},
                          instance=INSTANCE, headers=ACME)
        assert (resp.status, (await resp.json())["error"]) == (403, "not_supported_by_provider")
    for audience, kind, body in sends:
        resp = await send(pclient, audience, kind, body, instance=INSTANCE, headers=ACME)
        assert resp.status == 200, (kind, await resp.text())
    # Sent concurrently: the provider may be asked in any order.
    out = (await sent(adapter, pclient, confirmations + len(sends)))[confirmations:]
    person = adapter.chat(USER)
    by_kind = {(m.chat, m.kind): m for m in out}
    assert len(by_kind) == len(sends), out
    assert by_kind[person, "text"].text == "Your order shipped"
    image, document = by_kind[person, "image"], by_kind[person, "document"]
    assert image.caption == "Look" and image.media in (None, JPEG)
    assert document.media in (None, PDF)
    assert document.filename == ("invoice.pdf" if adapter.document_names else None)
    if adapter.groups:
        assert by_kind[adapter.group_id(), "text"].text == "Hello team"
    # The media bytes reach every provider whose server receives them.
    assert adapter.name == "sandbox" or (image.media, document.media) == (JPEG, PDF)


async def test_statuses_update_the_message_and_reach_the_sender(
        adapter: Adapter, pclient: TestClient, receiver: Receiver) -> None:
    await register(adapter, pclient)
    resp = await send(pclient, "single", "text", {"number": USER, "message": "Ping"},
                      instance=INSTANCE, headers=ACME)
    our_id = (await resp.json())["id"]
    await sent(adapter, pclient, 2)
    # `sent` is told when the provider takes the message; its own "sent" report
    # after that tells nobody twice.
    for status in ("sent", "delivered", "read"):
        answer = await adapter.report_status(pclient, our_id, status)
        assert answer.status == 200, await answer.text()
    resp = await pclient.get("/admin/messages", headers=ADMIN, params={"direction": "out"})
    mine = [m for m in (await resp.json())["messages"] if m["id"] == our_id]
    assert mine[0]["status"] == "read"

    def statuses() -> list[str]:  # deliveries go out concurrently: in no promised order
        return sorted(verify(h, ACME_SECRET)["data"]["status"] for h in receiver.on("/acme")
                      if h.json["type"] == "message.status")
    assert await wait_for(lambda: statuses() == ["delivered", "read", "sent"])
    await quiet()
    assert statuses() == ["delivered", "read", "sent"]


async def test_inbound_reaches_the_subscriber_webhook(adapter: Adapter, pclient: TestClient,
                                                      receiver: Receiver) -> None:
    resp = await adapter.inject(pclient, "where is my order?", sender=USER, msg_id=msg_id())
    assert resp.status == 200, await resp.text()

    def received() -> list[dict[str, object]]:
        return [verify(h, ACME_SECRET)["data"] for h in receiver.on("/acme")
                if h.json["type"] == "message.received"]
    data = (await wait_for(received))[0]
    assert data["from"] == USER and data["text"] == "where is my order?"
    assert data["instance_id"] == INSTANCE


async def test_a_redelivered_message_changes_nothing(adapter: Adapter,
                                                     pclient: TestClient) -> None:
    same = msg_id()
    for _ in range(2):
        resp = await adapter.inject(pclient, "Hola", sender=USER, msg_id=same)
        assert resp.status == 200, await resp.text()
    await wait_sent(pclient)
    assert len(await sent(adapter, pclient, 1)) == 1
    resp = await pclient.get("/admin/messages", headers=ADMIN, params={"direction": "in"})
    assert len((await resp.json())["messages"]) == 1


async def test_missing_or_wrong_signatures_are_refused(adapter: Adapter,
                                                       pclient: TestClient) -> None:
    genuine = adapter.body("Hi", sender=USER, msg_id=msg_id())
    for signature, status in ((None, adapter.refused[0]), ("bad", adapter.refused[1])):
        resp = await adapter.post_raw(pclient, genuine, signature)
        assert resp.status == status
        assert (await resp.json())["error"]
    resp = await pclient.get("/admin/messages", headers=ADMIN, params={"direction": "in"})
    assert (await resp.json())["messages"] == []
    assert (await adapter.post_raw(pclient, genuine, "good")).status == 200  # the same, signed
    await sent(adapter, pclient, 1)


MALFORMED = [b"", b"{", b"[]", b"null", b'"text"', b"42", b'{"unexpected": true}',
             b"\xff\xfe\x00garbage", b"[" * 50_000 + b"]" * 50_000,
             b'{"event": "message", "entry": "nope", "payload": 7, "text": []}']


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
async def test_malformed_bodies_are_4xx_never_5xx(adapter: Adapter, pclient: TestClient,
                                                  body: bytes) -> None:
    resp = await adapter.post_raw(pclient, body, "good")
    assert 400 <= resp.status < 500, (resp.status, (await resp.text())[:200])
    assert (await resp.json())["error"]
    resp = await pclient.get("/admin/messages", headers=ADMIN, params={"direction": "in"})
    assert (await resp.json())["messages"] == []
