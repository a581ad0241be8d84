"""Admin API and the bad-input rules: every bad request gets a readable 4xx,
nothing is stored, and the server keeps serving."""

from __future__ import annotations

import io

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN, outbox, say
from tests.test_registration import registration


async def test_health(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic dGVzdA=="},
                                     {"Authorization": "Bearer"}])
@pytest.mark.parametrize("path", ["/admin/registrations", "/admin/messages",
                                  "/admin/registrations/+34600000001", "/sandbox/outbox"])
async def test_admin_token_required(client: TestClient, headers: dict, path: str) -> None:
    resp = await client.get(path, headers=headers)
    assert resp.status == 401
    body = await resp.json()
    assert body["error"] == "unauthorized" and "test-admin-token" not in body["error_message"]


async def test_registrations_listing_and_filters(client: TestClient) -> None:
    await say(client, "Hola", sender="+34600000001")
    await say(client, "Hallo", sender="+4915112345678")
    await say(client, "STOPP", sender="+4915112345678")
    all_ = await (await client.get("/admin/registrations", headers=ADMIN)).json()
    assert {r["number"] for r in all_["registrations"]} == {"+34600000001", "+4915112345678"}
    active = await (await client.get("/admin/registrations", headers=ADMIN,
                                     params={"status": "active", "instance": "1"})).json()
    assert [r["number"] for r in active["registrations"]] == ["+34600000001"]
    reg = active["registrations"][0]
    assert set(reg) >= {"instance", "number", "locale", "status", "registered_at", "updated_at"}
    assert reg["registered_at"].endswith("Z")


@pytest.mark.parametrize("form", ["+34600000001", "34600000001", "+34 600-000-001",
                                  "0034600000001"])
async def test_registration_by_number_in_any_common_form(client: TestClient, form: str) -> None:
    await say(client, "Hola", sender="+34600000001")
    resp = await client.get(f"/admin/registrations/{form}", headers=ADMIN)
    assert resp.status == 200
    assert (await resp.json())["registrations"][0]["number"] == "+34600000001"


async def test_registration_unknown_number_404_and_writer_without_registration(
        client: TestClient) -> None:
    resp = await client.get("/admin/registrations/+34600000009", headers=ADMIN)
    assert resp.status == 404
    await say(client, "what?", sender="+34600000009")
    resp = await client.get("/admin/registrations/+34600000009", headers=ADMIN)
    assert resp.status == 200 and (await resp.json()) == {"registrations": []}
    bad = await client.get("/admin/registrations/hello", headers=ADMIN)
    assert bad.status == 400


async def test_message_log_both_directions(client: TestClient) -> None:
    await say(client, "Hola", sender="+34600000001")
    await outbox(client)
    log = (await (await client.get("/admin/messages", headers=ADMIN)).json())["messages"]
    assert [m["direction"] for m in log] == ["in", "out"]
    assert log[0]["text"] == "Hola" and log[1]["status"] == "sent"


@pytest.mark.parametrize(("body", "content_type", "status", "slug"), [
    (b"{not json", "application/json", 400, "malformed_json"),
    (b"", "application/json", 400, "malformed_json"),
    (b"[1, 2]", "application/json", 400, "malformed_json"),
    (b'{"from": "+34600000001"}', "application/json", 400, "invalid_text"),
    (b'{"from": "12", "text": "Hola"}', "application/json", 400, "invalid_from"),
    (b'{"from": "+34600000001", "text": "Hola", "instance": 99}', "application/json", 404,
     "unknown_instance"),
    (b'{"from": "+34600000001", "text": "Hola", "instance": "1"}', "application/json", 400,
     "invalid_instance"),
    (b'{"from": "+34600000001", "text": "Hola", "instance": 2}', "application/json", 400,
     "not_sandbox"),
    (b'{"from": "+34600000001", "text": "Hola", "group": "x"}', "application/json", 400,
     "invalid_group"),
    (b'{"from": "+34600000001", "text": "' + b"a" * (1024 * 1024) + b'"}', "text/plain", 413,
     "payload_too_large"),
    (b'\xff\xfe{"from": 1}', "application/octet-stream", 400, "malformed_json"),
])
async def test_sandbox_inbound_bad_input(client: TestClient, body: bytes, content_type: str,
                                         status: int, slug: str) -> None:
    resp = await client.post("/sandbox/inbound", data=io.BytesIO(body),
                             headers={**ADMIN, "Content-Type": content_type})
    assert resp.status == status, await resp.text()
    payload = await resp.json()
    assert payload["error"] == slug and payload["error_message"]
    assert await registration(client, "+34600000001") == []
    assert (await client.get("/healthz")).status == 200  # still serving


async def test_text_body_with_wrong_content_type_is_still_json(client: TestClient) -> None:
    resp = await client.post("/sandbox/inbound", headers={**ADMIN, "Content-Type": "text/plain"},
                             data=b'{"instance": 1, "from": "+34600000001", "text": "Hola"}')
    assert resp.status == 200
    assert (await registration(client, "+34600000001"))[0]["locale"] == "es"


async def test_unknown_route_and_method(client: TestClient) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    resp = await client.put("/sandbox/inbound", headers=ADMIN)
    assert resp.status == 405
