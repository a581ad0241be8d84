"""Provider notices end to end: Meta's account_update and template updates
(pywa's fixtures), WAHA's session states, stored and listed at
GET /admin/notices, counted in /metrics, a restricted account in /readyz and
on the dashboard, and a template Meta rejected or paused not used."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import ADMIN, ROOT, post_signed
from tests.graph import GraphState
from tests.send_helpers import DEFAULT, send
from tests.test_window import HOUR, NOTIFICATION, _registered
from tests.ui_helpers import login
from tests.waha import waha_app, waha_config, waha_sign

MakeClient = Callable[..., Awaitable[TestClient]]
META = ROOT / "tests" / "fixtures" / "providers" / "meta"


def fixture(name: str, key: str) -> dict[str, Any]:
    return dict(json.loads((META / f"{name}.json").read_text())[key])


def template_notice(name: str, event: str, reason: str = "NONE") -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "time": 1764590000,
            "changes": [{"field": "message_template_status_update", "value": {
                "event": event, "message_template_id": 1, "message_template_name": name,
                "message_template_language": "en_US", "reason": reason}}]}]}


async def test_notices_are_listed_counted_and_a_restriction_shows(client: TestClient) -> None:
    for body in (fixture("account_update", "account_restriction"),
                 fixture("template_quality_update", "yellow"),
                 fixture("call_status", "call_status")):
        resp = await post_signed(client, body)
        assert resp.status == 200, await resp.text()
    listed = await (await client.get("/admin/notices", headers=ADMIN)).json()
    assert [(n["kind"], n["event"]) for n in listed["notices"]] == [
        ("calls", "RINGING"), ("message_template_quality_update", None),
        ("account_update", "ACCOUNT_RESTRICTION")]
    assert listed["notices"][2]["detail"]["restriction_info"][0]["restriction_type"] == \
        "RESTRICTED_BIZ_INITIATED_MESSAGING"
    assert listed["account_problems"] and "restricted" in listed["account_problems"][0]
    only = await (await client.get("/admin/notices", headers=ADMIN,
                                   params={"kind": "calls"})).json()
    assert [n["kind"] for n in only["notices"]] == ["calls"]
    assert (await client.get("/admin/notices")).status == 401

    metrics = await (await client.get("/metrics")).text()
    assert 'wagate_provider_notices_total{kind="account_update",provider="meta"} 1.0' in metrics

    ready = await client.get("/readyz")
    assert ready.status == 503
    assert any("RESTRICTED_BIZ_INITIATED_MESSAGING" in r for r in (await ready.json())["reasons"])
    await login(client)
    page = await (await client.get("/ui/")).text()
    assert "restricted by the provider" in page and "ACCOUNT_RESTRICTION" in page

    # Meta lifts it: the account is ready again.
    lifted = fixture("account_update", "account_reconnected")
    assert (await post_signed(client, lifted)).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_a_template_meta_paused_is_not_used_and_the_refusal_says_why(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _registered(make_client, graph_state, greeting="Hi", ago=25 * HOUR)
    paused = template_notice("wagate_notification", "PAUSED", "LOW_QUALITY")
    assert (await post_signed(client, paused)).status == 200
    resp = await send(client, "single", "text", {"number": "34600000001", "message": "Hi"},
                      instance=2)
    assert resp.status == 475, await resp.text()
    message = (await resp.json())["error_message"]
    assert "wagate_notification is paused by the provider (LOW_QUALITY)" in message
    assert graph_state.messages == []
    # Approved again: used again.
    assert (await post_signed(client, template_notice("wagate_notification",
                                                      "APPROVED"))).status == 200
    resp = await send(client, "single", "text", {"number": "34600000001", "message": "Hi"},
                      instance=2)
    assert resp.status == 200, await resp.text()


async def test_a_rejected_template_stays_unused_after_a_restart(
        make_client: MakeClient, graph_state: GraphState) -> None:
    rejected = template_notice("wagate_notification", "REJECTED", "INVALID_FORMAT")
    client = await _registered(make_client, graph_state, greeting="Hi", ago=25 * HOUR)
    assert (await post_signed(client, rejected)).status == 200
    await client.close()
    again = await make_client(DEFAULT + NOTIFICATION)  # the same store, read back at start
    resp = await send(again, "single", "text", {"number": "34600000001", "message": "Hi"},
                      instance=2)
    assert resp.status == 475, await resp.text()
    assert "rejected by the provider" in (await resp.json())["error_message"]


async def test_waha_session_states_are_notices(
        make_client: MakeClient, aiohttp_server: Callable[..., Awaitable[TestServer]]) -> None:
    waha = await aiohttp_server(waha_app())
    client = await make_client(waha_config(str(waha.make_url("")).rstrip("/")))
    for state in ("PASSKEY_REQUIRED", "WORKING"):
        raw = json.dumps({"event": "session.status", "session": "default",
                          "payload": {"status": state}}).encode()
        resp = await client.post("/webhooks/waha", data=raw, headers={
            "Content-Type": "application/json", "X-Webhook-Hmac": waha_sign(raw)})
        assert resp.status == 200, await resp.text()
    listed = await (await client.get("/admin/notices", headers=ADMIN,
                                     params={"provider": "waha"})).json()
    assert [(n["kind"], n["event"], n["instance_id"]) for n in listed["notices"]] == [
        ("session.status", "WORKING", 3), ("session.status", "PASSKEY_REQUIRED", 3)]
