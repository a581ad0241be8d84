"""What every answer says about itself: the server's name without versions,
no caching of answers to credentials, Referrer-Policy on /docs; and a signed
session whose end is not a finite time is no session."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from bot.web.keys import clock_key
from bot.web.snapshot import holder_key
from bot.web.ui.dashboard import SESSIONS
from bot.web.ui.session import _b64, credential_fingerprint
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


async def test_a_session_ending_at_infinity_or_nan_is_none(client: TestClient) -> None:
    config = client.app[holder_key].current.config
    now = client.app[clock_key].now()
    fingerprint = credential_fingerprint(config, "admin", "admin")
    for ends in ("Infinity", "NaN", "-Infinity", "1e400", str(now + 10 * 24 * 3600),
                 str(now + 60)):
        body = ('{"r":"admin","s":"admin","c":"' + "c" * 32 + f'","k":"{fingerprint}","e":'
                + ends + "}").encode()
        json.loads(body)  # what the reader parses
        cookie = f"{_b64(body)}.{SESSIONS._sign(config, body)}"
        client.session.cookie_jar.clear()
        resp = await client.get("/ui/", headers={"Cookie": f"wagate_ui={cookie}"},
                                allow_redirects=False)
        expected = 200 if ends == str(now + 60) else 303
        assert resp.status == expected, (ends, resp.status)
