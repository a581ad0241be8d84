"""Hostile input over HTTP, route by route: every malformed, oversized, forged
or hostile request gets a 4xx with `{"error_message", "error"}` (or a 200 where
the input is in fact acceptable), never a 500; nothing is stored for a refused
request; the service keeps serving; an accepted message is never dropped."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from reliability.hostile import (
    DEEP,
    HOSTILE_VALUES,
    NOT_AN_OBJECT,
    bad_payloads,
    meta_message,
    meta_value,
    odd_payloads,
    with_field,
)
from tests.conftest import ADMIN, PNID, VERIFY_TOKEN, meta_text, post_signed, say, sign
from tests.send_helpers import ACME, DEFAULT, PDF, PNG, b64, path

MakeClient = Callable[..., Awaitable[TestClient]]

# Every route of the app: a new one must be added here (and to the sweep).
ROUTES = {
    ("GET", "/"),  # the front door
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json"),
    ("POST", "/sandbox/inbound"), ("GET", "/sandbox/outbox"), ("POST", "/sandbox/status"),
    ("GET", "/webhooks/meta"), ("POST", "/webhooks/meta"),
    ("POST", "/webhooks/twilio"), ("GET", "/media/{id}"),
    ("POST", "/webhooks/waha"),
    ("GET", "/admin/instances/{id}/profile"), ("PUT", "/admin/instances/{id}/profile"),
    ("GET", "/admin/registrations"), ("GET", "/admin/registrations/{number}"),
    ("POST", "/admin/registrations/{number}/opt-out"), ("GET", "/admin/messages"),
    ("GET", "/admin/notices"),
    ("POST", "/admin/reload"), ("GET", "/admin/config"),
    ("GET", "/admin/deliveries"), ("GET", "/admin/deliveries/{id}"),
    ("POST", "/admin/deliveries/replay"), ("POST", "/admin/deliveries/{id}/retry"),
    ("GET", "/admin/endpoints"), ("POST", "/admin/endpoints/{key}/enable"),
    ("GET", "/admin/costs"),
    ("GET", "/admin/subscribers"), ("POST", "/admin/subscribers"),
    ("GET", "/admin/subscribers/{id}"), ("PATCH", "/admin/subscribers/{id}"),
    ("DELETE", "/admin/subscribers/{id}"), ("POST", "/admin/subscribers/{id}/suspend"),
    ("POST", "/admin/subscribers/{id}/resume"), ("POST", "/admin/subscribers/{id}/secrets"),
    ("GET", "/admin/audit"), ("POST", "/v3/account/secrets"),
    ("GET", "/v3/whatsapp/messages/{id}"), ("POST", "/v3/whatsapp/single/template/message/{n}"),
    *(("POST", f"/v3/whatsapp/{a}/{k}/message/{{n}}") for a in ("single", "group")
      for k in ("text", "image", "document", "url")),
    ("GET", "/v3/account"), ("GET", "/v3/account/messages"), ("GET", "/v3/account/deliveries"),
    ("GET", "/v3/account/deliveries/{id}"), ("POST", "/v3/account/deliveries/{id}/retry"),
    ("POST", "/v3/account/deliveries/replay"), ("GET", "/v3/account/webhooks"),
    ("POST", "/v3/account/webhooks/test"),
    # webhook endpoints kept in the store, the subscriber's own and the admin's for it
    *((m, f"{prefix}{item}".replace("{one}", one))
      for prefix, one in (("/v3/account/webhooks", "{id}"),
                          ("/admin/subscribers/{id}/webhooks", "{key}"))
      for m, item in (("POST", ""), ("GET", "/{one}"), ("PATCH", "/{one}"), ("DELETE", "/{one}"),
                      ("POST", "/{one}/secret"), ("POST", "/{one}/test"))),
    ("GET", "/admin/subscribers/{id}/webhooks"),
    # the pages (tests/test_ui_pages.py): a wrong method is a JSON 405 there too
    ("GET", "/docs"), ("GET", "/docs/{name}"), ("GET", "/ui"), ("GET", "/portal"),
    *((m, f"{prefix}{page}") for prefix in ("/ui/", "/portal/") for m, page in (
        ("GET", "login"), ("POST", "login"), ("POST", "logout"), ("POST", "logout/everywhere"),
        ("GET", ""),
        ("GET", "messages"), ("GET", "messages/{id}"), ("GET", "deliveries"),
        ("GET", "deliveries/{id}"), ("POST", "deliveries/{id}/retry"),
        ("POST", "deliveries/replay"))),
    ("GET", "/ui/static/{name}"), ("GET", "/ui/live"), ("GET", "/ui/registrations"),
    ("POST", "/ui/registrations/{number}/opt-out"), ("GET", "/ui/subscribers"),
    ("GET", "/ui/subscribers/new"), ("POST", "/ui/subscribers"), ("GET", "/ui/audit"),
    ("GET", "/ui/subscribers/{id}"), ("POST", "/ui/subscribers/{id}"),
    ("POST", "/ui/subscribers/{id}/suspend"), ("POST", "/ui/subscribers/{id}/resume"),
    ("GET", "/ui/subscribers/{id}/delete"), ("POST", "/ui/subscribers/{id}/delete"),
    ("POST", "/ui/subscribers/{id}/secrets"),
    ("POST", "/portal/webhooks/test"), ("GET", "/portal/credentials"),
    ("POST", "/portal/secrets"),
    *((m, f"{base}{page}") for base in ("/ui/subscribers/{id}/webhooks", "/portal/webhooks")
      for m, page in (("GET", ""), ("POST", ""), ("GET", "/{key}"), ("POST", "/{key}"),
                      ("POST", "/{key}/secret"), ("POST", "/{key}/test"),
                      ("GET", "/{key}/delete"), ("POST", "/{key}/delete"))),
}

NUMBER = "+34600000001"


def concrete(template: str) -> str:
    return (template.replace("{number}", NUMBER).replace("{id}", "x").replace("{key}", "k")
            .replace("{n}", "1").replace("{name}", "style.css"))


async def refused(resp: ClientResponse, *statuses: int) -> dict[str, Any]:
    """A 4xx (one of `statuses` when given) with the one error shape."""
    text = await resp.text()
    assert 400 <= resp.status < 500, (resp.status, text[:300])
    if statuses:
        assert resp.status in statuses, (resp.status, text[:300])
    body = json.loads(text)
    assert isinstance(body.get("error_message"), str) and body["error_message"], body
    assert isinstance(body.get("error"), str) and body["error"], body
    return body


async def answered(resp: ClientResponse) -> None:
    """Either acceptable (2xx) or a proper refusal: never a 5xx."""
    if resp.status >= 300:
        await refused(resp)
    else:
        await resp.read()


async def alive(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200


async def stored(client: TestClient) -> tuple[list, list, list]:
    """(outbox, registrations, inbound message log)."""
    out = (await (await client.get("/sandbox/outbox", headers=ADMIN)).json())["messages"]
    regs = (await (await client.get("/admin/registrations", headers=ADMIN)).json())
    log = await (await client.get("/admin/messages", headers=ADMIN,
                                  params={"direction": "in"})).json()
    return out, regs["registrations"], log["messages"]


async def raw_request(client: TestClient, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte (headers aiohttp's client
    would refuse to send: invalid UTF-8, control characters)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head + b"\r\nHost: x\r\nConnection: close\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


@pytest.fixture
async def app(make_client: MakeClient) -> TestClient:
    return await make_client(DEFAULT)


# ---- the route table and methods


async def test_every_route_is_in_the_sweep(app: TestClient) -> None:
    found = {(r.method, r.resource.canonical) for r in app.app.router.routes()
             if r.method != "HEAD" and r.resource is not None}
    assert found == ROUTES


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_wrong_methods_get_a_json_405(app: TestClient, method: str) -> None:
    for template in sorted({t for _m, t in ROUTES}):
        if (method, template) in ROUTES:
            continue
        resp = await app.request(method, concrete(template), headers={**ADMIN, **ACME},
                                 data=b"{}", allow_redirects=False)
        if resp.status == 303 and template.startswith(("/ui/", "/portal/")):
            # GET /portal/deliveries/replay is a page (deliveries/{id}): log in first
            assert "/login?next=" in resp.headers["Location"], template
            continue
        # (GET /admin/deliveries/replay is GET /admin/deliveries/{id}: a 404.)
        await refused(resp, 404, 405)
    resp = await app.request(method, "/no/such/route", headers=ADMIN)
    await refused(resp, 404, 405)
    await alive(app)


# ---- bodies that are no JSON object, on every route that reads one


def _json_routes() -> list[tuple[str, dict[str, str]]]:
    sends = [(path(a, k), ACME) for a in ("single", "group")
             for k in ("text", "image", "document", "url")]
    return [("/sandbox/inbound", ADMIN), (f"/admin/registrations/{NUMBER}/opt-out", ADMIN),
            ("/sandbox/status", ADMIN), ("/admin/subscribers", ADMIN), *sends]


@pytest.mark.parametrize("body", NOT_AN_OBJECT, ids=lambda b: repr(b[:12]) + str(len(b)))
async def test_bodies_that_are_no_json_object(app: TestClient, body: bytes) -> None:
    for url, headers in _json_routes():
        for content_type in ("application/json", "text/plain"):
            resp = await app.post(url, data=io.BytesIO(body),
                                  headers={**headers, "Content-Type": content_type})
            if "opt-out" in url:  # no body: opt out everywhere; a 4 KB limit
                await (answered(resp) if not body.strip() else refused(resp, 400, 413))
                continue
            await refused(resp, 400)
    resp = await post_signed(app, body)
    await refused(resp, 400)
    await alive(app)
    out, _regs, log = await stored(app)
    assert out == [] and log == []


@pytest.mark.parametrize("url,limit", [("/sandbox/inbound", 1024 * 1024),
                                       ("/sandbox/status", 1024 * 1024),
                                       (f"/admin/registrations/{NUMBER}/opt-out", 4096),
                                       (path("single", "document"), 4 * 1024 * 1024 + 320 * 1024),
                                       ("/webhooks/meta", 3 * 1024 * 1024)])
async def test_oversized_bodies_get_a_json_413(app: TestClient, url: str, limit: int) -> None:
    body = b'{"a": "' + b"x" * limit + b'"}'
    resp = await app.post(url, data=io.BytesIO(body), headers={
        **ADMIN, **ACME, "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(body)})
    await refused(resp, 413)
    await alive(app)


# ---- the send API: every field, every wrong type and hostile string

SEND_BODIES = {
    ("single", "text"): {"number": NUMBER, "message": "hello"},
    ("single", "url"): {"number": NUMBER, "url": "https://example.com/a"},
    ("single", "image"): {"number": NUMBER, "image": b64(PNG), "caption": "look"},
    ("single", "document"): {"number": NUMBER, "document": b64(PDF), "filename": "a.pdf",
                             "caption": "read"},
    ("group", "text"): {"group_name": "Team", "group_admin": NUMBER, "message": "hello"},
    ("group", "url"): {"group_name": "Team", "group_admin": NUMBER,
                       "url": "https://example.com/a"},
    ("group", "image"): {"group_name": "Team", "image": b64(PNG), "caption": "look"},
    ("group", "document"): {"group_name": "Team", "document": b64(PDF), "filename": "a.pdf"},
}


@pytest.mark.parametrize("route", sorted(SEND_BODIES), ids="/".join)
@pytest.mark.parametrize("value", sorted(HOSTILE_VALUES))
async def test_send_fields_of_every_wrong_type(app: TestClient, route: tuple[str, str],
                                               value: str) -> None:
    await say(app, "Hi", sender=NUMBER)
    await say(app, "Hi", sender=NUMBER, group={"id": "g1", "name": "Team"})
    base = SEND_BODIES[route]
    ok = await app.post(path(*route), data=io.BytesIO(json.dumps(base).encode()), headers=ACME)
    assert ok.status == 200, await ok.text()  # the body is valid as it stands
    queued = len([m for m in (await stored(app))[0] if m["subscriber"] == "acme"])
    for name in base:
        resp = await app.post(path(*route), data=io.BytesIO(
            with_field(base, name, HOSTILE_VALUES[value])), headers=ACME)
        await refused(resp)
    # A caption is optional: null means none.
    if "caption" in base:
        resp = await app.post(path(*route), data=io.BytesIO(
            with_field(base, "caption", "null")), headers=ACME)
        assert resp.status == 200
        queued += 1
    out = [m for m in (await stored(app))[0] if m["subscriber"] == "acme"]
    assert len(out) == queued
    await alive(app)


@pytest.mark.parametrize("url", ["http://[::1", "http://[zz]/", "https://", "javascript:x",
                                 "http://a b", "http://" + "a" * 3000, "http://exa\x00mple.com",
                                 "ftp://example.com", "http://:80"])
async def test_send_odd_urls(app: TestClient, url: str) -> None:
    await say(app, "Hi", sender=NUMBER)
    resp = await app.post(path("single", "url"), data=io.BytesIO(
        json.dumps({"number": NUMBER, "url": url}).encode()), headers=ACME)
    await refused(resp, 400)
    assert [m for m in (await stored(app))[0] if m["subscriber"] == "acme"] == []


@pytest.mark.parametrize("instance", ["0", "-1", "1e999", "99999999999999999999999", "%00",
                                      "..", "%2e%2e", "1%00", "x" * 5000, "١", "¹", "%F0%9F%98%80",
                                      "1.0", "+1", " 1"])
async def test_send_instance_path_param(app: TestClient, instance: str) -> None:
    resp = await app.post(f"/v3/whatsapp/single/text/message/{instance}",
                          data=b'{"number": "+34600000001", "message": "x"}', headers=ACME)
    await refused(resp, 404)
    await alive(app)


@pytest.mark.parametrize("headers", [
    {},
    {"X-WM-CLIENT-ID": "dev@acme.example"},
    {"X-WM-CLIENT-ID": "x" * 8000, "X-WM-CLIENT-SECRET": "acme-secret"},
    {"X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "y" * 8000},
    {"X-WM-CLIENT-ID": "dév@acme.example", "X-WM-CLIENT-SECRET": "sécret ☃"},
    {"X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "acme-secret\t"},
    {"X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "ACME-SECRET"},
], ids=range(7))
async def test_send_credentials_hostile_headers(app: TestClient, headers: dict) -> None:
    for url in (path("single", "text"), "/v3/whatsapp/messages/abc"):
        method = app.post if "single" in url else app.get
        resp = await method(url, data=b'{"number": "+34600000001", "message": "x"}',
                            headers=headers)
        if headers.get("X-WM-CLIENT-SECRET") == "acme-secret\t":  # white space is trimmed
            assert resp.status in (404, 472), await resp.text()
            continue
        await refused(resp, 401, 474)
    assert (await stored(app))[0] == []
    await alive(app)


@pytest.mark.parametrize("secret", [b"\xff\xfe", b"acme-secret\xc3", b"s\xe9cret",
                                    b"\xed\xa0\x80"])
async def test_send_credentials_in_invalid_utf8(app: TestClient, secret: bytes) -> None:
    body = b'{"number": "+34600000001", "message": "x"}'
    status, answer = await raw_request(app, b"POST " + path("single", "text").encode()
                                       + b" HTTP/1.1\r\nX-WM-CLIENT-ID: dev@acme.example"
                                       + b"\r\nX-WM-CLIENT-SECRET: " + secret, body)
    assert status == 474, answer
    assert set(json.loads(answer)) >= {"error_message", "error"}
    await alive(app)


async def test_send_duplicate_credential_headers(app: TestClient) -> None:
    status, answer = await raw_request(app, b"POST " + path("single", "text").encode()
                                       + b" HTTP/1.1\r\nX-WM-CLIENT-ID: dev@acme.example"
                                       b"\r\nX-WM-CLIENT-SECRET: wrong"
                                       b"\r\nX-WM-CLIENT-SECRET: acme-secret",
                                       b'{"number": "+34600000001", "message": "x"}')
    assert status == 474, answer
    assert (await stored(app))[0] == []


async def test_too_long_header_line_is_refused(app: TestClient) -> None:
    # aiohttp's HTTP parser answers this one itself (before any route runs).
    resp = await app.get("/v3/whatsapp/messages/abc",
                         headers={**ACME, "X-WM-CLIENT-ID": "x" * 100_000})
    assert 400 <= resp.status < 500
    await alive(app)


@pytest.mark.parametrize("message_id", ["%00", "..", "x" * 5000, "%F0%9F%98%80", "%FF",
                                        "'; DROP TABLE outbound; --", "%2F..%2F..%2Fetc"])
async def test_message_status_odd_ids(app: TestClient, message_id: str) -> None:
    resp = await app.get(f"/v3/whatsapp/messages/{message_id}", headers=ACME)
    await refused(resp, 404)
    await alive(app)


# ---- the sandbox and the admin API

INBOUND = {"instance": 1, "from": NUMBER, "text": "Hi"}


@pytest.mark.parametrize("field", ["instance", "from", "text", "id", "group", "name"])
@pytest.mark.parametrize("value", sorted(HOSTILE_VALUES))
async def test_sandbox_inbound_fields(app: TestClient, field: str, value: str) -> None:
    resp = await app.post("/sandbox/inbound", headers=ADMIN,
                          data=io.BytesIO(with_field(INBOUND, field, HOSTILE_VALUES[value])))
    if (field, value) in (("name", "long"), ("instance", "int")):
        await answered(resp)  # acceptable: a long profile name; instance 1
        return
    await refused(resp, 400, 404)
    _out, regs, log = await stored(app)
    assert regs == [] and log == []
    await alive(app)


@pytest.mark.parametrize("group", [{"id": 1}, {"id": ""}, {"id": "g", "name": 5}, "g", ["g"],
                                   {"id": "g" * 300_000}, {"id": "g", "name": "n" * 300_000},
                                   {"id": "g\x00"}, {"id": "g", "name": "\ud800"}])
async def test_sandbox_inbound_odd_groups(app: TestClient, group: Any) -> None:
    resp = await app.post("/sandbox/inbound", headers=ADMIN,
                          data=io.BytesIO(json.dumps({**INBOUND, "group": group}).encode()))
    await refused(resp, 400)
    _out, regs, log = await stored(app)
    assert regs == [] and log == []
    await alive(app)


QUERIES = [{"limit": "-1"}, {"limit": "0"}, {"limit": "abc"}, {"limit": "1e999"},
           {"limit": "9" * 30}, {"limit": "9" * 5000}, {"instance": "1e999"},
           {"instance": "-1"}, {"instance": "99999999999999999999999"}, {"instance": "x"},
           {"instance": "١"}, {"status": "garbage"}, {"status": "\x00"}, {"direction": "sideways"},
           {"number": "garbage"}, {"number": "+" + "9" * 5000}, {"to": "%00"},
           {"subscriber": "s" * 5000}, {"endpoint": "\ud800"}, {"since": "garbage"}]
ADMIN_GETS = ["/admin/registrations", "/admin/messages", "/admin/notices", "/admin/deliveries",
              "/admin/endpoints", "/admin/config", "/sandbox/outbox", "/readyz", "/metrics",
              "/openapi.json", "/healthz"]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: str(q)[:40])
async def test_admin_query_params(app: TestClient, query: dict[str, str]) -> None:
    for url in ADMIN_GETS:
        resp = await app.get(url, headers=ADMIN, params=query)
        await answered(resp)
    await alive(app)


@pytest.mark.parametrize("since", ["garbage", "", "nan", "NaN", "inf", "-inf", "1e999",
                                   "-1e20", "1e12", "99999999999999999999", "0001-01-01",
                                   "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                   "2026-13-45", "2026-01-01T25:00", "\x00", "1_000",
                                   "2026-01-01T00:00:00 05:00"])
async def test_replay_since(app: TestClient, since: str) -> None:
    resp = await app.post("/admin/deliveries/replay", headers=ADMIN, params={"since": since})
    await answered(resp)
    await alive(app)


PATH_PARAMS = ["%00", "..", "%2e%2e", "x" * 5000, "３４６００００００００１", "²²²²²²²²²",
               "%F0%9F%98%80", "%FF", "%ED%A0%80", "+", "%20", "0" * 16]


@pytest.mark.parametrize("param", PATH_PARAMS)
async def test_admin_path_params(app: TestClient, param: str) -> None:
    for method, template in [("GET", "/admin/registrations/{}"),
                             ("POST", "/admin/registrations/{}/opt-out"),
                             ("GET", "/admin/deliveries/{}"),
                             ("POST", "/admin/deliveries/{}/retry"),
                             ("POST", "/admin/endpoints/{}/enable")]:
        resp = await app.request(method, template.format(param), headers=ADMIN)
        await refused(resp, 400, 404)
    _out, regs, _log = await stored(app)
    assert regs == []
    await alive(app)


@pytest.mark.parametrize("body", [{"instance": "1"}, {"instance": 1.0}, {"instance": True},
                                  {"instance": 10 ** 30}, {"instance": -1}, {"instance": []},
                                  {"instance": {}}])
async def test_opt_out_body(app: TestClient, body: dict) -> None:
    await say(app, "Hi", sender=NUMBER)
    resp = await app.post(f"/admin/registrations/{NUMBER}/opt-out", headers=ADMIN,
                          data=json.dumps(body).encode())
    await refused(resp, 400, 404)
    regs = (await stored(app))[1]
    assert [r["status"] for r in regs] == ["active"]


@pytest.mark.parametrize("authorization", [b"Bearer \xff\xfe", b"Bearer test-admin-token\xc3",
                                           b"Bearer \xed\xa0\x80", b"\xff", b"Bearer  ",
                                           b"bearer " + b"t" * 7000])
async def test_admin_token_in_odd_bytes(app: TestClient, authorization: bytes) -> None:
    for url in (b"GET /admin/registrations", b"POST /admin/reload"):
        status, answer = await raw_request(app, url + b" HTTP/1.1\r\nAuthorization: "
                                           + authorization)
        assert status == 401, answer
        assert set(json.loads(answer)) >= {"error_message", "error"}
    await alive(app)


async def test_duplicate_admin_tokens(app: TestClient) -> None:
    status, answer = await raw_request(app, b"GET /admin/registrations HTTP/1.1\r\n"
                                       b"Authorization: Bearer wrong\r\n"
                                       b"Authorization: Bearer test-admin-token")
    assert status == 401, answer


# ---- Meta's webhook: the handshake, signatures, payload shapes


@pytest.mark.parametrize("query", [
    {}, {"hub.mode": "subscribe"}, {"hub.mode": "x", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "é☃"},
    {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "\x00"},
    {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "v" * 6000}])
async def test_meta_handshake_refusals(app: TestClient, query: dict[str, str]) -> None:
    await refused(await app.get("/webhooks/meta", params=query), 400, 403)


@pytest.mark.parametrize("raw_query", [b"hub.mode=subscribe&hub.challenge=1&hub.verify_token=%FF",
                                       b"hub.mode=subscribe&hub.challenge=1&hub.verify_token=%ED"
                                       b"%A0%80", b"hub.mode=%FF&hub.challenge=%FF"])
async def test_meta_handshake_invalid_utf8(app: TestClient, raw_query: bytes) -> None:
    status, answer = await raw_request(app, b"GET /webhooks/meta?" + raw_query + b" HTTP/1.1")
    assert 400 <= status < 500, answer
    assert set(json.loads(answer)) >= {"error_message", "error"}


async def test_meta_handshake_echoes_odd_challenges(app: TestClient) -> None:
    for challenge in ("x" * 5000, "<script>", "☃"):
        resp = await app.get("/webhooks/meta", params={
            "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": challenge})
        assert resp.status == 200 and await resp.text() == challenge
        assert resp.content_type == "text/plain"


@pytest.mark.parametrize("signature", [b"", b"sha256=", b"sha256=" + b"0" * 64, b"md5=abc",
                                       b"sha256=\xff\xfe", b"sha256=\xc3\xa9" * 40,
                                       b"x" * 7000])
async def test_meta_forged_signatures(app: TestClient, signature: bytes) -> None:
    body = json.dumps(meta_text("Hi")).encode()
    status, answer = await raw_request(app, b"POST /webhooks/meta HTTP/1.1\r\n"
                                       b"Content-Type: application/json\r\n"
                                       b"X-Hub-Signature-256: " + signature, body)
    assert status in (401, 403), answer
    assert set(json.loads(answer)) >= {"error_message", "error"}
    assert (await stored(app))[2] == []
    await alive(app)


async def test_meta_duplicate_signature_headers(app: TestClient) -> None:
    body = json.dumps(meta_text("Hi")).encode()
    status, answer = await raw_request(app, b"POST /webhooks/meta HTTP/1.1\r\n"
                                       b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\n"
                                       b"X-Hub-Signature-256: " + sign(body).encode(), body)
    assert status == 403, answer


def _value(**value: Any) -> dict[str, Any]:
    return meta_value(PNID, **value)


def _message(**fields: Any) -> dict[str, Any]:
    return meta_message(PNID, **fields)


BAD_PAYLOADS = bad_payloads(PNID)


# Not Meta's envelope (no `entry` list): refused. Meta's envelope with nothing
# usable in it: acknowledged, or Meta retries it and stops a failing webhook.
NOT_ENVELOPES = frozenset(name for name, body in BAD_PAYLOADS.items()
                          if not isinstance(body, dict) or not isinstance(body.get("entry"), list))


@pytest.mark.parametrize("name", sorted(BAD_PAYLOADS))
async def test_meta_payloads_with_nothing_usable(app: TestClient, name: str) -> None:
    resp = await post_signed(app, BAD_PAYLOADS[name])
    if name in NOT_ENVELOPES:
        await refused(resp, 400)
    else:
        assert resp.status == 200, await resp.text()
    assert (await stored(app))[2] == []
    await alive(app)


ODD_PAYLOADS = odd_payloads(PNID)


@pytest.mark.parametrize("name", sorted(ODD_PAYLOADS))
async def test_meta_odd_payloads_never_crash(app: TestClient, name: str) -> None:
    resp = await post_signed(app, ODD_PAYLOADS[name])
    await answered(resp)
    # Redelivered: still no crash, and the same answer.
    again = await post_signed(app, ODD_PAYLOADS[name])
    assert again.status == resp.status
    await answered(again)
    await alive(app)


@pytest.mark.parametrize("name", sorted(BAD_PAYLOADS) + sorted(ODD_PAYLOADS))
async def test_meta_odd_items_never_drop_the_good_ones(app: TestClient, name: str) -> None:
    """One good message batched with the odd ones: accepted and kept."""
    odd = BAD_PAYLOADS.get(name, ODD_PAYLOADS.get(name))
    good = meta_text("Hola", msg_id="wamid.GOOD")
    entries = odd["entry"] if isinstance(odd, dict) and isinstance(odd.get("entry"), list) else []
    resp = await post_signed(app, {"object": "whatsapp_business_account",
                                   "entry": [*entries, *good["entry"]]})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["received"] >= 1
    log = (await stored(app))[2]
    assert "meta:wamid.GOOD" in {m["id"] for m in log}
    regs = (await stored(app))[1]
    assert (NUMBER, 2) in [(r["number"], r["instance"]) for r in regs]


async def test_meta_lone_surrogates_are_kept_readable(app: TestClient) -> None:
    """Meta's message is kept (never dropped for one bad code unit), the lone
    surrogate shown as U+FFFD, which the store and webhooks can carry."""
    resp = await post_signed(app, _message(text={"body": "Hola \ud83d"}, id="wamid.S\udc00"))
    assert resp.status == 200 and (await resp.json())["received"] == 1
    log = (await stored(app))[2]
    assert [(m["id"], m["text"]) for m in log] == [("meta:wamid.S\ufffd", "Hola \ufffd")]


@pytest.mark.slow  # thousands of messages
async def test_meta_huge_batch(app: TestClient) -> None:
    messages = [{"from": f"3460000{i:04d}", "id": f"wamid.B{i}", "timestamp": "1",
                 "type": "text", "text": {"body": "what?"}} for i in range(1000)]
    messages += [None, 1, "x"] * 100
    resp = await post_signed(app, _value(messages=messages))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["received"] == 1000
    log = await (await app.get("/admin/messages", headers=ADMIN,
                               params={"direction": "in", "limit": "1000"})).json()
    assert len(log["messages"]) == 1000
    await alive(app)


async def test_meta_non_json_signed_bodies(app: TestClient) -> None:
    for body in [*NOT_AN_OBJECT, b"\xef\xbb\xbf{}", "{}".encode("utf-16")]:
        resp = await post_signed(app, body)
        await refused(resp, 400)
    await alive(app)


async def test_nothing_survives_but_the_service(app: TestClient) -> None:
    """After a volley across every route, the service still answers and works."""
    for _method, template in sorted(ROUTES):
        for junk in (DEEP, b"\xff" * 100, b"null"):
            await app.post(concrete(template), data=io.BytesIO(junk),
                           headers={**ADMIN, **ACME, "X-Hub-Signature-256": sign(junk)})
    await alive(app)
    await say(app, "Hi", sender=NUMBER)
    resp = await app.post(path("single", "text"), data=io.BytesIO(json.dumps(
        {"number": NUMBER, "message": "still here"}).encode()), headers=ACME)
    assert resp.status == 200, await resp.text()
