"""What every answer says about itself: the server's name without versions,
no caching of answers to credentials, Referrer-Policy on /docs. (A session's
end is the store's, whatever a cookie says: tests/store_contract/
test_web_sessions.py.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN
from tests.send_helpers import ACME, DEFAULT
from tests.test_malformed_http import assert_json_error, exchange
from tests.test_operations_cli import Proc, svc  # noqa: F401 (the fixture)


async def test_the_server_header_names_no_versions(
        make_client: Callable[..., Awaitable[TestClient]]) -> None:
    client = await make_client(DEFAULT)
    for method, path, headers in [("GET", "/healthz", {}), ("GET", "/nowhere", {}),
                                  ("GET", "/admin/registrations", {}), ("GET", "/docs", {}),
                                  ("GET", "/ui/login", {}), ("GET", "/v3/account", ACME),
                                  ("POST", "/v3/whatsapp/single/text/message/1", ACME)]:
        resp = await client.request(method, path, headers=headers)
        assert resp.headers["Server"] == "wagate", (path, resp.headers)


def test_the_server_header_on_what_aiohttp_refuses_before_routing(svc: Proc) -> None:  # noqa: F811
    answer = exchange(svc.port, b"GARBAGE\r\n\r\n")
    assert_json_error(answer, 400)
    assert answer is not None and answer.headers["server"] == "wagate", answer.headers
    answer = exchange(svc.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: \xff\r\n\r\n")
    assert answer is not None and answer.status == 417 and answer.headers["server"] == "wagate"


async def test_answers_to_credentials_are_not_stored(
        make_client: Callable[..., Awaitable[TestClient]]) -> None:
    client = await make_client(DEFAULT)
    for path, headers in [("/v3/account", ACME), ("/v3/account/messages", ACME),
                          ("/v3/account/deliveries", ACME), ("/v3/account/webhooks", ACME),
                          ("/admin/registrations", ADMIN), ("/admin/messages", ADMIN)]:
        resp = await client.get(path, headers=headers)
        assert resp.status == 200, path
        assert resp.headers.get("Cache-Control") == "no-store", (path, resp.headers)
    resp = await client.get("/v3/account", headers={**ACME, "X-WM-CLIENT-SECRET": "wrong"})
    assert resp.status == 474 and resp.headers.get("Cache-Control") == "no-store"


async def test_docs_send_a_referrer_policy(client: TestClient) -> None:
    for path in ("/docs", "/docs/docs.js"):
        resp = await client.get(path)
        assert resp.status == 200
        assert resp.headers.get("Referrer-Policy") == "same-origin", path
