"""The send API as a new user's client calls it: a number typed without its
country code is refused as such (471), and the same fields form-encoded are
accepted on every endpoint, with the same checks and the same quota."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlencode

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.conftest import say, wait_for, wait_sent
from tests.graph import GraphState
from tests.send_helpers import ACME, BETA, DEFAULT, JPEG, PDF, b64, path, send, sent_by, usage
from tests.test_send_meta import GROUP_ID
from tests.test_send_meta import _api as meta_api

ES = "+34600000001"
FORM = "application/x-www-form-urlencoded"

MakeClient = Callable[..., Awaitable[TestClient]]


async def post_form(client: TestClient, audience: str, kind: str, body: str, *,
                    instance: int = 1, headers: dict[str, str] = ACME) -> ClientResponse:
    # A stream, not bytes: aiohttp warns about large raw bodies (and warnings fail).
    return await client.post(path(audience, kind, instance), data=io.BytesIO(body.encode()),
                             headers={**headers, "Content-Type": FORM})


async def answer(resp: ClientResponse, status: int, slug: str) -> str:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"] == slug, body
    return str(body["error_message"])


@pytest.fixture
async def api(make_client: MakeClient) -> TestClient:
    client = await make_client(DEFAULT)
    await say(client, "Hola", sender=ES)
    await wait_sent(client)
    return client


# ---- numbers without a country code


@pytest.mark.parametrize("number", ["600000009", 600000009, "600 000 009", "0612345678"])
async def test_a_number_without_its_country_code_is_471(api: TestClient,
                                                        number: str | int) -> None:
    message = await answer(await send(api, "single", "text", {"number": number,
                                                              "message": "hi"}),
                           471, "invalid_number")
    assert "country code" in message and "lacks" in message
    assert await usage(api) == (0, 0) and await sent_by(api) == []


async def test_numbers_with_their_country_code_still_go_through(api: TestClient) -> None:
    for number in ("34600000001", "+34 600-000-001", "0034600000001", 34600000001):
        resp = await send(api, "single", "text", {"number": number, "message": "hi"})
        assert resp.status == 200, await resp.text()
    # An explicit '+' (or 00) says the country code is there: a possible number
    # goes on to the registration check.
    await answer(await send(api, "single", "text", {"number": "+600000009", "message": "hi"}),
                 472, "not_registered")
    await answer(await send(api, "single", "text", {"number": "+999123", "message": "hi"}),
                 471, "invalid_number")


async def test_a_group_admin_is_only_checked_to_be_a_possible_number(api: TestClient) -> None:
    # The gateway does not use it: libphonenumber's doubts about it refuse nothing
    # (600000009 reads as a possible +60 number), only what is no number at all.
    await answer(await send(api, "group", "text", {"group_name": "x", "group_admin": "600000009",
                                                   "message": "hi"}), 404, "unknown_group")
    for admin in ("12", "boss", "+999123"):
        await answer(await send(api, "group", "text", {"group_name": "x", "group_admin": admin,
                                                       "message": "hi"}), 400, "invalid_field")


async def test_a_registered_number_typed_without_plus_is_that_recipient(
        api: TestClient) -> None:
    # +447700900202 is in a range reserved for fiction: libphonenumber calls it
    # possible, not valid. Its owner registered (the provider gave the number).
    fiction = "+447700900202"
    await answer(await send(api, "single", "text", {"number": fiction[1:], "message": "hi"}),
                 471, "invalid_number")
    await say(api, "Hi", sender=fiction)
    await wait_sent(api)
    for typed in (fiction[1:], "44 7700 900202", int(fiction[1:])):
        resp = await send(api, "single", "text", {"number": typed, "message": "hi"})
        assert resp.status == 200, await resp.text()
    assert [m["to"] for m in await sent_by(api)] == [fiction] * 3
    # Registered on instance 1 only: on another instance it is still a number
    # missing its country code, as is its unregistered neighbour everywhere.
    await answer(await send(api, "single", "text", {"number": fiction[1:], "message": "hi"},
                            instance=2), 471, "invalid_number")
    await answer(await send(api, "single", "text", {"number": "447700900203", "message": "hi"}),
                 471, "invalid_number")
    # ...and someone who opted out is refused as such, not as a badly typed number.
    await say(api, "STOP", sender=fiction)
    await answer(await send(api, "single", "text", {"number": fiction[1:], "message": "hi"}),
                 472, "not_registered")


# ---- form-encoded bodies


def raw_form(**fields: str) -> str:
    """A body built by hand, as `curl -d "image=$(base64 file)"` sends it: nothing
    percent-encoded, so each '+' will read as a space."""
    return "&".join(f"{name}={value}" for name, value in fields.items())


async def test_every_send_endpoint_takes_form_fields(make_client: MakeClient,
                                                     graph_state: GraphState) -> None:
    api = await meta_api(make_client, graph_state)
    assert "+" in b64(JPEG) and "+" in b64(PDF)  # what form decoding could break
    group = {"group_name": GROUP_ID, "group_admin": "+34600000002"}
    bodies = [
        ("single", "text", urlencode({"number": ES, "message": "Hi there (y) 1+1"})),
        ("single", "image", urlencode({"number": ES, "image": b64(JPEG), "caption": "Look"})),
        ("single", "document", raw_form(number=ES, document=b64(PDF),
                                        filename="Factura%20n%C2%BA%207.pdf")),
        ("single", "url", raw_form(number=ES, url=quote("https://acme.example/x?a=1&b=2",
                                                        safe=""))),
        ("group", "text", urlencode({**group, "message": "Hello all"})),
        ("group", "image", raw_form(group_name=quote(GROUP_ID), group_admin="+34600000002",
                                    image=b64(JPEG))),
        ("group", "document", urlencode({**group, "document": b64(PDF), "filename": "plan"})),
        ("group", "url", urlencode({**group, " URL ": "https://acme.example/y"})),
    ]
    for audience, kind, body in bodies:
        resp = await post_form(api, audience, kind, body, instance=2)
        assert resp.status == 200, (kind, await resp.text())
    await wait_for(lambda: len(graph_state.messages) == 8)
    # Sends go out concurrently: no order among them is promised, so none is assumed.
    sent = [m.json for m in graph_state.messages]
    assert sorted(m["to"] for m in sent) == sorted(["34600000001"] * 4 + [GROUP_ID] * 4)
    texts = [m["text"]["body"] for m in sent if m["type"] == "text"]
    assert sorted(texts) == sorted(["Hi there 👍 1+1", "https://acme.example/x?a=1&b=2",
                                    "Hello all", "https://acme.example/y"])
    # base64 arrives byte for byte, '+' percent-encoded or not
    files = [u.form["file"] for u in graph_state.uploads]
    assert sorted(bytes(f["bytes"]) for f in files) == sorted([JPEG, PDF, JPEG, PDF])
    assert sorted(f["filename"] for f in files if f["bytes"] == PDF) == [
        "Factura nº 7.pdf", "plan.pdf"]
    assert await usage(api) == (8, 2)


async def test_form_fields_are_checked_and_counted_like_json(api: TestClient) -> None:
    await answer(await post_form(api, "single", "text", urlencode({"number": ES})),
                 400, "missing_field")
    await answer(await post_form(api, "single", "text", f"number={ES}&Number=1&message=x"),
                 400, "duplicate_field")
    await answer(await post_form(api, "single", "text", "number=600000009&message=x"),
                 471, "invalid_number")
    await answer(await post_form(api, "single", "text", "number=34600000001&message=a%00b"),
                 400, "invalid_text")
    await answer(await post_form(api, "single", "text", "number=34600000001&message=%FF"),
                 400, "malformed_form")
    await answer(await post_form(api, "single", "image", "number=34600000001&image=%21%21"),
                 400, "bad_base64")
    assert await usage(api, "beta") == (0, 0)
    # beta's plan allows 3 messages a day: the fourth form is refused like JSON would be
    for i in range(3):
        resp = await post_form(api, "single", "text", f"number=%2B34600000001&message=n{i}",
                               headers=BETA)
        assert resp.status == 200, await resp.text()
    resp = await post_form(api, "single", "text", "number=34600000001&message=n3",
                           headers=BETA)
    await answer(resp, 469, "quota_exceeded")
    assert resp.headers["Retry-After"]
    assert await usage(api, "beta") == (3, 1)
    await wait_sent(api)
    assert [m["text"] for m in await sent_by(api, "beta")] == ["n0", "n1", "n2"]


async def test_the_openapi_document_offers_the_form_on_every_send_operation(
        api: TestClient) -> None:
    doc = await (await api.get("/openapi.json")).json()
    # The template send takes nested parameters and media: JSON only.
    sends = [item["post"] for p, item in doc["paths"].items()
             if "/message/" in p and "/template/" not in p]
    assert len(sends) == 8
    for operation in sends:
        content = operation["requestBody"]["content"]
        as_json, as_form = content["application/json"]["schema"], content[FORM]["schema"]
        assert as_form["required"] == as_json["required"]
        assert set(as_form["properties"]) == set(as_json["properties"])
        assert {s["type"] for s in as_form["properties"].values()} == {"string"}
        assert "415" in operation["responses"]
