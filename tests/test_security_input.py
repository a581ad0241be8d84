"""Text that is not valid Unicode: a lone UTF-16 surrogate, however it is sent
(the JSON escape, UTF-8 bytes of a surrogate, a UTF-16 body), is a 400
`invalid_field` naming the field on the send, admin and sandbox APIs, and
nothing is stored; in a provider's webhook it becomes U+FFFD and the message
is kept."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import ADMIN, say, wait_sent
from tests.send_helpers import ACME, DEFAULT, PDF, PNG, b64, path, sent_by, usage

MakeClient = Callable[..., Awaitable[TestClient]]
ES = "+34600000001"
LONE = "\udfff"


def encodings(body: dict[str, Any]) -> dict[str, bytes]:
    """The body as clients send it: escaped ASCII, UTF-8 bytes of the surrogate
    (CESU-style, as some encoders write), UTF-16 with a BOM."""
    text = json.dumps(body, ensure_ascii=False)
    return {"escape": json.dumps(body).encode(),
            "utf-8 bytes": text.encode("utf-8", "surrogatepass"),
            "utf-16": text.encode("utf-16", "surrogatepass")}


def with_lone(body: dict[str, Any], where: str) -> dict[str, Any]:
    """`body` with a lone surrogate in the field at `where` (`a.b`, `a[0]`)."""
    copy = json.loads(json.dumps(body))
    node: Any = copy
    parts = where.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    last = parts[-1]
    if last.startswith("["):
        node[int(last[1:-1])] += LONE
    else:
        node[last] = (node[last] if isinstance(node[last], str) else "") + LONE
    return copy


async def refused(resp: Any, field: str) -> None:
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["error"] == "invalid_field", body
    assert body["error_message"].startswith(f"{field} is not valid Unicode"), body
    assert "surrogate (\\ud" in body["error_message"]


@pytest.fixture
async def api(make_client: MakeClient) -> TestClient:
    client = await make_client(DEFAULT)
    await say(client, "Hola", sender=ES)
    await say(client, "Hi", sender=ES, group={"id": "g-team", "name": "Team"})
    await wait_sent(client)
    return client


SENDS = [
    ("single", "text", {"number": ES, "message": "hi"}, ["message", "number"]),
    ("group", "text", {"group_name": "Team", "group_admin": ES, "message": "hi"},
     ["group_name", "message", "group_admin"]),
    ("single", "url", {"number": ES, "url": "https://example.com/a"}, ["url"]),
    ("single", "image", {"number": ES, "image": b64(PNG), "caption": "c"}, ["caption"]),
    ("group", "document", {"group_name": "Team", "document": b64(PDF), "filename": "a.pdf"},
     ["filename"]),
]


@pytest.mark.parametrize(("audience", "kind", "body", "fields"), SENDS,
                         ids=[f"{a}-{k}" for a, k, _, _ in SENDS])
async def test_a_lone_surrogate_in_a_send_is_a_400_naming_the_field(
        api: TestClient, audience: str, kind: str, body: dict[str, Any],
        fields: list[str]) -> None:
    for field in fields:
        for how, raw in encodings(with_lone(body, field)).items():
            resp = await api.post(path(audience, kind), data=io.BytesIO(raw),
                                  headers={**ACME, "Content-Type": "application/json"})
            await refused(resp, field)
            assert how  # (named for the failure report)
    assert await usage(api) == (0, 0) and await sent_by(api) == []
    # The same request without the surrogate goes through.
    resp = await api.post(path(audience, kind), json=body, headers=ACME)
    assert resp.status == 200, await resp.text()


async def test_a_lone_surrogate_in_a_field_name_or_nested_value(api: TestClient) -> None:
    resp = await api.post(path("single", "text"), headers={**ACME, "Content-Type":
                                                           "application/json"},
                          data=io.BytesIO(b'{"number": "+34600000001", "message": "hi", '
                                          b'"x\\ud800": 1}'))
    await refused(resp, "a field name in the body")
    resp = await api.post("/sandbox/inbound", headers=ADMIN,
                          json={"instance": 1, "from": "+34600000002", "text": "Hola",
                                "group": {"id": "g-2", "name": "Club" + LONE}})
    await refused(resp, "group.name")
    for field in ("text", "from", "name", "id"):
        body = {"instance": 1, "from": "+34600000002", "text": "Hola", "name": "Ana",
                "id": "m-1"}
        for raw in encodings(with_lone(body, field)).values():
            resp = await api.post("/sandbox/inbound", headers={**ADMIN, "Content-Type":
                                                               "application/json"},
                                  data=io.BytesIO(raw))
            await refused(resp, field)
    resp = await api.put("/admin/instances/1/profile", headers=ADMIN,
                         json={"about": "Hi" + LONE})
    await refused(resp, "about")
    regs = (await (await api.get("/admin/registrations", headers=ADMIN)).json())
    assert [r["number"] for r in regs["registrations"]] == [ES]


async def test_nul_is_still_named_as_such(api: TestClient) -> None:
    resp = await api.post(path("single", "text"), headers=ACME,
                          json={"number": ES, "message": "a\x00b"})
    assert resp.status == 400
    body = await resp.json()
    assert body == {"error": "invalid_text",
                    "error_message": "message holds a NUL character (\\u0000)"}


async def test_a_lone_surrogate_in_a_waha_webhook_becomes_ufffd_and_the_message_is_kept(
        make_client: MakeClient, aiohttp_server: Callable[..., Awaitable[TestServer]]) -> None:
    from tests.waha import post_waha, waha_app, waha_config, waha_message

    waha = await aiohttp_server(waha_app())
    client = await make_client(waha_config(str(waha.make_url("")).rstrip("/")))
    for raw in encodings(waha_message("Hola " + LONE, msg_id="false_1_" + LONE)).values():
        resp = await post_waha(client, raw)
        assert resp.status == 200, await resp.text()
    log = (await (await client.get("/admin/messages", headers=ADMIN,
                                   params={"direction": "in"})).json())["messages"]
    assert [m["text"] for m in log] == ["Hola \ufffd"]  # once: the same id three times
