"""`/openapi.json` describes exactly the send API's routes, both ways (the
self-service /v3/account routes: tests/test_openapi.py)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.send_helpers import DEFAULT


async def test_openapi_matches_every_v3_route(make_client) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await make_client(DEFAULT)
    resp = await client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    routed = {(route.method.lower(), route.resource.canonical)
              for route in client.app.router.routes()
              if route.resource is not None and route.resource.canonical.startswith("/v3/whatsapp/")
              and route.method != "HEAD"}
    documented = {(method, p) for p, item in doc["paths"].items() for method in item
                  if p.startswith("/v3/whatsapp/")}
    assert routed == documented
    assert len(routed) == 10  # eight sends, the template send, the status


async def test_openapi_operations_are_complete(make_client) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await make_client(DEFAULT)
    doc = await (await client.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values() if s["type"] == "apiKey"} == {
        "X-WM-CLIENT-ID", "X-WM-CLIENT-SECRET"}
    assert doc["security"] == [{"ClientId": [], "ClientSecret": []}]
    for p, item in doc["paths"].items():
        if not p.startswith("/v3/whatsapp/"):
            continue  # the account, admin and operational routes: tests/test_openapi.py
        for operation in item.values():
            assert operation["tags"] == ["send"] and "security" not in operation, p
            codes = set(operation["responses"])
            assert {"200", "401", "474"} <= codes, p
            if operation.get("requestBody"):
                assert {"400", "403", "404", "413", "469", "473"} <= codes, p
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                assert ("group_name" in schema["required"]) == ("/group/" in p)
                assert "469" in codes and "Retry-After" in operation["responses"]["469"][
                    "headers"]
            for ref in _refs(operation):
                name = ref.rsplit("/", 1)[-1]
                section = ref.split("/")[2]
                assert name in doc["components"][section], ref


def _refs(node: object) -> list[str]:  # (also used by tests/test_openapi.py)
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
