"""`/openapi.json` describes every route of the app, both ways: the send API
(see also tests/test_send_openapi.py), the admin, deliveries and sandbox APIs
behind the Bearer token, and the open operational endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN
from tests.send_helpers import DEFAULT
from tests.test_send_openapi import _refs

# Routes deliberately not documented, each with the reason.
LEFT_OUT: dict[tuple[str, str], str] = {
    ("get", "/webhooks/meta"): "Meta's verification handshake: Meta calls it, not developers",
    ("post", "/webhooks/meta"): "Meta's signed event POSTs: Meta calls it, not developers",
    ("post", "/webhooks/twilio"): "Twilio's signed callbacks: Twilio calls it, not developers",
    ("post", "/webhooks/waha"): "WAHA's signed event POSTs: WAHA calls it, not developers",
    ("get", "/"): "The front door: a page of links for people who open the service's address",
}
ADMIN_TAGS = {"admin", "deliveries", "sandbox", "subscribers"}
TAGS = ADMIN_TAGS | {"send", "account", "operations", "media"}


async def _document(client: TestClient) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc: dict[str, Any] = await resp.json()
    return doc


# HTML for people, not an API: the dashboard, the portal and the API docs page.
PAGES = ("/ui", "/portal", "/docs")


def _routed(client: TestClient) -> set[tuple[str, str]]:
    return {(route.method.lower(), route.resource.canonical)
            for route in client.app.router.routes()
            if route.resource is not None and route.method != "HEAD"
            and not route.resource.canonical.startswith(PAGES)}


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, p, operation) for p, item in doc["paths"].items()
            for method, operation in item.items()]


async def test_openapi_matches_every_route(make_client) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await make_client(DEFAULT)
    doc = await _document(client)
    routed = _routed(client)
    documented = {(method, p) for method, p, _ in _operations(doc)}
    assert set(LEFT_OUT) <= routed, "a left-out route no longer exists: drop it from LEFT_OUT"
    assert not set(LEFT_OUT) & documented
    assert documented - routed == set(), "documented but not routed"
    assert routed - documented - set(LEFT_OUT) == set(), "routed but not documented"
    for prefix in ("/admin/", "/sandbox/", "/v3/"):
        assert any(p.startswith(prefix) for _, p in documented), prefix
    assert {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"),
            ("get", "/openapi.json")} <= documented


async def test_admin_operations_declare_bearer_and_401(make_client) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await make_client(DEFAULT)
    doc = await _document(client)
    scheme = doc["components"]["securitySchemes"]["AdminToken"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    admin = [(m, p, op) for m, p, op in _operations(doc) if set(op["tags"]) & ADMIN_TAGS]
    assert {p.split("/")[1] for _, p, _ in admin} == {"admin", "sandbox"}
    for method, p, operation in admin:
        assert operation["security"] == [{"AdminToken": []}], (method, p)
        unauthorized = operation["responses"]["401"]
        assert "unauthorized" in unauthorized["description"], (method, p)
        assert "WWW-Authenticate" in unauthorized["headers"], (method, p)
    # and every route under /admin/ and /sandbox/ is one of them
    assert {(m, p) for m, p, _ in admin} == {
        (m, p) for m, p, _ in _operations(doc) if p.startswith(("/admin/", "/sandbox/"))}


async def test_admin_routes_answer_401_as_documented(make_client) -> None:  # type: ignore[no-untyped-def]
    """The document's claim checked against the app: no token, 401 Bearer."""
    client: TestClient = await make_client(DEFAULT)
    doc = await _document(client)
    for method, p, operation in _operations(doc):
        if operation.get("security") != [{"AdminToken": []}]:
            continue
        url = p.replace("{number}", "+34600000001").replace("{id}", "x").replace("{key}", "k")
        resp = await client.request(method.upper(), url)
        assert resp.status == 401, (method, p)
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert (await resp.json())["error"] == "unauthorized"


async def test_open_operations_need_no_credential(make_client) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await make_client(DEFAULT)
    doc = await _document(client)
    opened = [(m, p, op) for m, p, op in _operations(doc) if op["tags"] == ["operations"]]
    assert {p for _, p, _ in opened} == {"/healthz", "/readyz", "/metrics", "/openapi.json"}
    for method, p, operation in opened:
        assert operation["security"] == [], p
        resp = await client.request(method.upper(), p)
        assert str(resp.status) in operation["responses"], p


async def test_every_operation_is_well_formed(make_client) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await make_client(DEFAULT)
    doc = await _document(client)
    assert {t["name"] for t in doc["tags"]} == TAGS
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for method, p, operation in _operations(doc):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in TAGS, (method, p)
        assert "200" in operation["responses"], (method, p)
        for ref in _refs(operation):
            section, name = ref.split("/")[2:]
            assert name in doc["components"][section], ref
        params = [doc["components"]["parameters"][prm["$ref"].rsplit("/", 1)[-1]]
                  if "$ref" in prm else prm for prm in operation.get("parameters", [])]
        in_path = {prm["name"] for prm in params if prm["in"] == "path"}
        assert in_path == {seg[1:-1] for seg in p.split("/") if seg.startswith("{")}, p
        for code, response in operation["responses"].items():
            if code != "200" and code != "503":
                schema = response["content"]["application/json"]["schema"]
                assert "Error" in schema["$ref"], (method, p, code)
    for schema in doc["components"]["schemas"].values():
        for ref in _refs(schema):
            assert ref.rsplit("/", 1)[-1] in doc["components"]["schemas"], ref


async def test_documented_shapes_match_answers(make_client) -> None:  # type: ignore[no-untyped-def]
    """Spot checks: the keys a response is documented to have are the keys it has."""
    client: TestClient = await make_client(DEFAULT)
    doc = await _document(client)

    def keys(p: str, method: str = "get") -> set[str]:
        schema = doc["paths"][p][method]["responses"]["200"]["content"][
            "application/json"]["schema"]
        return set(schema["properties"])

    for p in ("/admin/config", "/admin/endpoints", "/admin/registrations", "/admin/messages",
              "/admin/deliveries", "/sandbox/outbox", "/healthz"):
        resp = await client.get(p, headers=ADMIN)
        assert resp.status == 200, p
        assert set(await resp.json()) == keys(p), p
    resp = await client.post("/sandbox/inbound", headers=ADMIN,
                             json={"from": "+34600000001", "text": "hi"})
    assert resp.status == 200 and set(await resp.json()) == keys("/sandbox/inbound", "post")
    messages = (await (await client.get("/admin/messages", headers=ADMIN)).json())["messages"]
    assert messages and set(messages[0]) == set(
        doc["components"]["schemas"]["LoggedMessage"]["properties"])
    regs = (await (await client.get("/admin/registrations", headers=ADMIN)).json())[
        "registrations"]
    if regs:
        assert set(regs[0]) == set(doc["components"]["schemas"]["Registration"]["properties"])


def test_row_schemas_match_their_json_views() -> None:
    """Every component schema of a row lists exactly the keys its JSON has: the
    schema is generated from the same dataclass the route answers with."""
    from bot.services.deliveries import EndpointStatus
    from bot.store.models import (
        AttemptRow,
        DeliveryRow,
        MessageLogRow,
        OutboundRow,
        Registration,
    )
    from bot.web import deliveries, row_json
    from bot.web.openapi import DOCUMENT
    from bot.web.operations import to_json

    schemas = DOCUMENT["components"]["schemas"]
    delivery = DeliveryRow(id="d", subscriber_id="s", endpoint_key="k", url="u", format="f",
                           event_type="e", payload="{}", status="failed", attempts=1,
                           next_attempt_at=0.0, last_status_code=None, last_error=None,
                           created_at=0.0, updated_at=0.0, delivered_at=None)
    outbound = OutboundRow(
        id="o", instance_id=1, to="+34600000001", group_id=None, type="text", text="t",
        caption=None, filename=None, mime=None, subscriber_id=None, status="sent",
        attempts=1, provider_message_id=None, error_code=None, error_title=None,
        created_at=0.0, updated_at=0.0)
    rows: dict[str, Any] = {
        "Delivery": deliveries.Delivery.of(delivery),
        "Attempt": deliveries.Attempt.of(AttemptRow(
            delivery_id="d", at=0.0, outcome="retry", status_code=500, latency_ms=1.5,
            response_body=None, error=None)),
        "Endpoint": deliveries.Endpoint.of(EndpointStatus(
            subscriber_id="s", key="k", url="u", format="f", configured=True, health=None)),
        "Registration": row_json.Registration.of(Registration(
            instance_id=1, number="+34600000001", locale="en", status="active",
            keyword_subscriber=None, registered_at=0.0, updated_at=0.0)),
        "OutboxMessage": row_json.OutboxMessage.of(outbound),
        "Message": row_json.Message.of(outbound),
        "LoggedMessage": row_json.LoggedMessage.of(MessageLogRow(
            direction="in", id="m", instance_id=1, number=None, group_id=None, type="text",
            text=None, status=None, at=0.0)),
    }
    for name, row in rows.items():
        view = to_json(row)
        assert set(view) == set(schemas[name]["properties"]), name
        assert set(schemas[name]["required"]) == set(view), name
