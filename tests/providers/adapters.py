"""One adapter per provider for the shared end-to-end suite: how to inject an
inbound message signed the provider's way, how to report a status, and where
the provider's local server recorded what went out.

Adding a provider to the suite is one class here and one entry in ADAPTERS.
Each adapter configures instance 5, owned by subscriber "acme" (see
test_shared_suite.py), so every event routes to acme's webhook.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from bot.web.keys import store_key
from tests.conftest import ADMIN, APP_SECRET, meta_text, sign
from tests.graph import GraphState, graph_state_key
from tests.waha import WahaState, waha_app, waha_config, waha_message, waha_sign, waha_state_key

INSTANCE = 5
NUMBER = "+15550005555"
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@dataclass(frozen=True)
class Sent:
    """One message as the provider's server received it, in neutral terms."""

    chat: str  # the provider's address of the person or group
    kind: str  # text | image | document
    text: str | None = None
    caption: str | None = None
    filename: str | None = None
    media: bytes | None = None  # None where the provider's server does not get the bytes


class Adapter(Protocol):
    name: str
    refused: tuple[int, int]  # the answer to a missing signature, to a wrong one
    names_groups: bool  # whether the gateway learns a group's name from the provider

    async def start(self, server: ServerFactory, graph: TestServer) -> str:
        """Start the provider's local server; the TOML for its section and instance 5."""
        ...

    def chat(self, number: str) -> str:
        """How the provider addresses a person (E.164 in)."""
        ...

    def group_id(self) -> str:
        """A group id in the provider's shape."""
        ...

    def body(self, text: str, *, sender: str, msg_id: str) -> bytes:
        """The raw body the provider would post for a user's text message."""
        ...

    async def inject(self, client: TestClient, text: str, *, sender: str, msg_id: str,
                     group: tuple[str, str] | None = None) -> ClientResponse:
        """A user's message, signed the provider's way; `group` is (id, name)."""
        ...

    async def post_raw(self, client: TestClient, body: bytes,
                       signature: str | None) -> ClientResponse:
        """Raw bytes to the inbound endpoint; signature "good", "bad" or None (missing)."""
        ...

    async def report_status(self, client: TestClient, message_id: str,
                            status: str) -> ClientResponse:
        """The provider's word (sent, delivered, read, failed) on our message."""
        ...

    async def sent(self, client: TestClient) -> list[Sent]:
        """What the provider was asked to send from instance 5 (in the order it
        was asked, which for messages sent at once need not be the order queued)."""
        ...


async def provider_message_id(client: TestClient, message_id: str) -> str:
    row = await client.app[store_key].get_outbound(message_id)
    assert row is not None and row.provider_message_id, f"{message_id} not sent yet"
    return row.provider_message_id


class SandboxAdapter:
    name = "sandbox"
    refused = (401, 401)  # the admin token is the sandbox's credential
    names_groups = True

    async def start(self, server: ServerFactory, graph: TestServer) -> str:
        return (f'\n[[instances]]\nid = {INSTANCE}\nnumber = "{NUMBER}"\n'
                'provider = "sandbox"\nowner = "acme"\n')

    def chat(self, number: str) -> str:
        return number

    def group_id(self) -> str:
        return "sandbox-group-1"

    def body(self, text: str, *, sender: str, msg_id: str) -> bytes:
        return json.dumps({"instance": INSTANCE, "from": sender, "text": text,
                           "id": msg_id}).encode()

    async def inject(self, client: TestClient, text: str, *, sender: str, msg_id: str,
                     group: tuple[str, str] | None = None) -> ClientResponse:
        body: dict[str, Any] = {"instance": INSTANCE, "from": sender, "text": text, "id": msg_id}
        if group:
            body["group"] = {"id": group[0], "name": group[1]}
        return await client.post("/sandbox/inbound", json=body, headers=ADMIN)

    async def post_raw(self, client: TestClient, body: bytes,
                       signature: str | None) -> ClientResponse:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers.update(ADMIN if signature == "good" else {"Authorization": "Bearer wrong"})
        return await client.post("/sandbox/inbound", data=body, headers=headers)

    async def report_status(self, client: TestClient, message_id: str,
                            status: str) -> ClientResponse:
        return await client.post("/sandbox/status", json={"id": message_id, "status": status},
                                 headers=ADMIN)

    async def sent(self, client: TestClient) -> list[Sent]:
        resp = await client.get("/sandbox/outbox", params={"instance": str(INSTANCE)},
                                headers=ADMIN)
        rows = sorted((await resp.json())["messages"], key=lambda r: r["created_at"])
        return [Sent(chat=r["group"]["id"] if r["group"] else r["to"], kind=r["type"],
                     text=r["text"], caption=r["caption"], filename=r["filename"])
                for r in rows if r["status"] != "queued"]


META_PNID = "105550005555"


class MetaAdapter:
    name = "meta"
    refused = (401, 403)
    names_groups = False  # Cloud API webhooks carry the group id only
    graph: GraphState

    async def start(self, server: ServerFactory, graph: TestServer) -> str:
        self.graph = graph.app[graph_state_key]
        return (f'\n[[instances]]\nid = {INSTANCE}\nnumber = "{NUMBER}"\nprovider = "meta"\n'
                f'phone_number_id = "{META_PNID}"\nowner = "acme"\n')

    def chat(self, number: str) -> str:
        return number.lstrip("+")

    def group_id(self) -> str:
        return "Y2FwaV9ncm91cDoxNTU1MDAwNTU1NQ"

    def body(self, text: str, *, sender: str, msg_id: str) -> bytes:
        return json.dumps(meta_text(text, sender=sender.lstrip("+"), msg_id=msg_id,
                                    pnid=META_PNID)).encode()

    async def inject(self, client: TestClient, text: str, *, sender: str, msg_id: str,
                     group: tuple[str, str] | None = None) -> ClientResponse:
        extra = {"group_id": group[0]} if group else {}
        return await self._post(client, meta_text(text, sender=sender.lstrip("+"),
                                                  msg_id=msg_id, pnid=META_PNID, **extra))

    async def _post(self, client: TestClient, payload: Any) -> ClientResponse:
        return await self.post_raw(client, json.dumps(payload).encode(), "good")

    async def post_raw(self, client: TestClient, body: bytes,
                       signature: str | None) -> ClientResponse:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = sign(
                body, APP_SECRET if signature == "good" else "wrong-secret")
        return await client.post("/webhooks/meta", data=body, headers=headers)

    async def report_status(self, client: TestClient, message_id: str,
                            status: str) -> ClientResponse:
        wamid = await provider_message_id(client, message_id)
        return await self._post(client, {"object": "whatsapp_business_account", "entry": [{
            "id": "W", "changes": [{"field": "messages", "value": {
                "metadata": {"phone_number_id": META_PNID},
                "statuses": [{"id": wamid, "status": status, "timestamp": str(int(time.time())),
                              "recipient_id": "34600000001"}]}}]}]})

    async def sent(self, client: TestClient) -> list[Sent]:
        media = {r.answer["id"]: r.form["file"]["bytes"] for r in self.graph.uploads
                 if META_PNID in r.path and r.answer and r.form}
        out = []
        for r in self.graph.messages:
            if META_PNID not in r.path:
                continue
            body = r.json
            kind = body["type"]
            if kind == "text":
                out.append(Sent(chat=body["to"], kind=kind, text=body["text"]["body"]))
                continue
            part = body[kind]
            out.append(Sent(chat=body["to"], kind=kind, caption=part.get("caption"),
                            filename=part.get("filename"), media=media.get(part["id"])))
        return out


class WahaAdapter:
    name = "waha"
    refused = (401, 403)
    names_groups = True  # read from WAHA's groups endpoint
    state: WahaState

    async def start(self, server: ServerFactory, graph: TestServer) -> str:
        waha = await server(waha_app())
        self.state = waha.app[waha_state_key]
        return waha_config(str(waha.make_url("")).rstrip("/"), instance=INSTANCE,
                           extra_instance='owner = "acme"\n')

    def chat(self, number: str) -> str:
        return f"{number.lstrip('+')}@c.us"

    def group_id(self) -> str:
        return "120363000000000005@g.us"

    def body(self, text: str, *, sender: str, msg_id: str) -> bytes:
        return json.dumps(waha_message(text, sender=self.chat(sender), msg_id=msg_id)).encode()

    async def inject(self, client: TestClient, text: str, *, sender: str, msg_id: str,
                     group: tuple[str, str] | None = None) -> ClientResponse:
        person = self.chat(sender)
        if group:
            self.state.groups[group[0]] = group[1]
            payload = waha_message(text, sender=group[0], msg_id=msg_id, participant=person)
        else:
            payload = waha_message(text, sender=person, msg_id=msg_id)
        return await self.post_raw(client, json.dumps(payload).encode(), "good")

    async def post_raw(self, client: TestClient, body: bytes,
                       signature: str | None) -> ClientResponse:
        headers = {"Content-Type": "application/json", "X-Webhook-Hmac-Algorithm": "sha512"}
        if signature is not None:
            headers["X-Webhook-Hmac"] = waha_sign(body) if signature == "good" else waha_sign(
                body, "wrong-key")
        return await client.post("/webhooks/waha", data=body, headers=headers)

    async def report_status(self, client: TestClient, message_id: str,
                            status: str) -> ClientResponse:
        ack = {"sent": "SERVER", "delivered": "DEVICE", "read": "READ", "failed": "ERROR"}
        payload = {"event": "message.ack", "session": "default", "payload": {
            "id": await provider_message_id(client, message_id), "from": "34600000001@c.us",
            "fromMe": True, "ack": 3, "ackName": ack[status]}}
        return await self.post_raw(client, json.dumps(payload).encode(), "good")

    async def sent(self, client: TestClient) -> list[Sent]:
        kinds = {"/api/sendText": "text", "/api/sendImage": "image", "/api/sendFile": "document"}
        out = []
        for r in self.state.sends:
            body = r.json
            file = body.get("file")
            out.append(Sent(chat=body["chatId"], kind=kinds[r.path], text=body.get("text"),
                            caption=body.get("caption"),
                            filename=file["filename"] if file and kinds[r.path] == "document"
                            else None,
                            media=base64.b64decode(file["data"]) if file else None))
        return out


# The providers the suite runs over; a new provider adds its adapter here.
ADAPTERS: dict[str, Callable[[], Adapter]] = {
    "sandbox": SandboxAdapter, "meta": MetaAdapter, "waha": WahaAdapter}
