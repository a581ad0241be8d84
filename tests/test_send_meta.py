"""The send API through the meta provider to a local Graph-shaped server:
text, image (multipart upload, then sent by id), document, group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from tests.conftest import PNID, meta_text, post_signed, wait_for
from tests.graph import GraphState
from tests.send_helpers import DEFAULT, JPEG, PDF, b64, send

MakeClient = Callable[..., Awaitable[TestClient]]
GROUP_ID = "120363000000000777@g.us"


async def _api(make_client: MakeClient, graph_state: GraphState) -> TestClient:
    client = await make_client(DEFAULT)
    assert (await post_signed(client, meta_text("Hola", sender="34600000001"))).status == 200
    assert (await post_signed(client, meta_text("Hi", sender="34600000002",
                                                group_id=GROUP_ID))).status == 200
    await wait_for(lambda: len(graph_state.messages) == 2)  # the two confirmations
    graph_state.requests.clear()
    return client


async def test_text_image_document_and_group_reach_graph(make_client: MakeClient,
                                                         graph_state: GraphState) -> None:
    api = await _api(make_client, graph_state)
    for kind, body in (
            ("text", {"number": "+34 600 000 001", "message": "Hi (y)"}),
            ("image", {"number": "34600000001", "image": b64(JPEG), "caption": "Look"}),
            ("document", {"number": "34600000001", "document": b64(PDF),
                          "filename": "Factura nº 7.pdf", "caption": None}),
            ("url", {"number": "34600000001", "url": "https://acme.example/x"})):
        resp = await send(api, "single", kind, body, instance=2)
        assert resp.status == 200, await resp.text()
    # A group registered by Meta without a name is known by its id.
    resp = await send(api, "group", "text", {"group_name": GROUP_ID, "message": "Hello all",
                                             "group_admin": "+34600000002"}, instance=2)
    assert resp.status == 200, await resp.text()
    msg_id = (await resp.json())["id"]
    await wait_for(lambda: len(graph_state.messages) == 5)

    def kind(body: dict) -> str:  # Meta sends the url message as text with a preview
        if body["recipient_type"] == "group":
            return "group"
        return "url" if body["type"] == "text" and body["text"]["preview_url"] else body["type"]
    by_type = {kind(m.json): m for m in graph_state.messages}
    assert len(by_type) == 5
    assert all(m.path == f"/v21.0/{PNID}/messages" for m in graph_state.messages)
    assert by_type["text"].json["to"] == "34600000001"
    assert by_type["text"].json["text"] == {"body": "Hi 👍", "preview_url": False}

    # The two uploads run concurrently: told apart by what they carry, not by order.
    image_upload, document_upload = sorted(
        graph_state.uploads, key=lambda u: u.form["file"]["content_type"] != "image/jpeg")
    assert image_upload.path == f"/v21.0/{PNID}/media"
    assert image_upload.form["file"]["bytes"] == JPEG
    assert image_upload.form["file"]["content_type"] == "image/jpeg"
    assert image_upload.form["messaging_product"]["bytes"] == b"whatsapp"
    image = by_type["image"].json["image"]
    assert image["caption"] == "Look" and image["id"].startswith("media.")

    assert document_upload.form["file"]["bytes"] == PDF
    assert document_upload.form["file"]["filename"] == "Factura nº 7.pdf"
    assert document_upload.form["file"]["content_type"] == "application/pdf"
    document = by_type["document"].json["document"]
    assert document["filename"] == "Factura nº 7.pdf" and "caption" not in document

    assert by_type["url"].json["text"] == {"body": "https://acme.example/x",
                                           "preview_url": True}
    group = by_type["group"].json
    assert group["recipient_type"] == "group" and group["to"] == GROUP_ID
    assert group["text"]["body"] == "Hello all"

    async def sent() -> bool:
        resp = await api.get(f"/v3/whatsapp/messages/{msg_id}", headers={
            "X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "acme-secret"})
        return (await resp.json())["status"] == "sent"
    await wait_for(sent)


async def test_failed_send_shows_the_reason(make_client: MakeClient,
                                            graph_state: GraphState) -> None:
    api = await _api(make_client, graph_state)
    graph_state.fail_next(131026, "Message undeliverable")
    resp = await send(api, "single", "text", {"number": "34600000001", "message": "x"},
                      instance=2)
    msg_id = (await resp.json())["id"]

    async def status() -> dict:
        resp = await api.get(f"/v3/whatsapp/messages/{msg_id}", headers={
            "X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "acme-secret"})
        body = await resp.json()
        return body if body["status"] == "failed" else {}
    failed = await wait_for(status)
    assert failed["reason"] == "Message undeliverable"
    assert failed["error"] == {"code": 131026, "title": "Message undeliverable"}
