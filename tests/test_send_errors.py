"""Every row of the send API's error table, and the bad input of issue 3: a readable
4xx with a stable slug, never a 500, nothing queued, no quota used."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import say, wait_sent
from tests.send_helpers import (
    ACME,
    BETA,
    DEFAULT,
    PDF,
    PNG,
    b64,
    path,
    plan,
    send,
    sent_by,
    subscriber,
    usage,
)

ES = "+34600000001"
OTHER = "+34600000002"  # never registered
GONE = "+34600000003"  # registered, then opted out
GROUP = {"id": "120363000000000001@g.us", "name": "Team Rocket"}
MB = 1024 * 1024

MakeClient = Callable[..., Awaitable[TestClient]]

EXTRA = (DEFAULT
         + plan("textonly", messages=10, recipients=10, features=("text",))
         + subscriber("texter", "dev@texter.example", "texter-secret", plan="textonly")
         + subscriber("late", "dev@late.example", "late-secret", since_days=-60,
                      expires_days=-1)
         + subscriber("early", "dev@early.example", "early-secret", since_days=3)
         + subscriber("owner", "dev@owner.example", "owner-secret", instances=())
         + '\n[[instances]]\nid = 3\nnumber = "+15550003333"\nprovider = "sandbox"\n'
           'owner = "owner"\n')


@pytest.fixture
async def api(make_client: MakeClient) -> TestClient:
    client = await make_client(EXTRA)
    await say(client, "Hola", sender=ES)
    await say(client, "Hola", sender=GONE)
    await say(client, "ALTO", sender=GONE)
    await say(client, "Hi", sender=ES, group=GROUP)
    await say(client, "Hola", sender=ES, instance=3)
    await wait_sent(client)
    return client


def creds(name: str) -> dict[str, str]:
    return {"X-WM-CLIENT-ID": f"dev@{name}.example", "X-WM-CLIENT-SECRET": f"{name}-secret"}


TEXT = {"number": ES, "message": "hello"}

# (audience, kind, instance, body or raw bytes, headers, status, slug)
CASES: list[tuple[str, str, int, Any, dict[str, str], int, str]] = [
    # 400
    ("single", "text", 1, b"{not json", ACME, 400, "malformed_json"),
    ("single", "text", 1, b"", ACME, 400, "malformed_json"),
    ("single", "text", 1, b"number=%2B34600000001&message=hi", ACME, 400, "malformed_json"),
    ("single", "text", 1, b'["number", "message"]', ACME, 400, "malformed_json"),
    ("single", "text", 1, {"number": ES}, ACME, 400, "missing_field"),
    ("single", "text", 1, {"message": "hi"}, ACME, 400, "missing_field"),
    ("single", "text", 1, {"number": ES, "message": "   "}, ACME, 400, "invalid_field"),
    ("single", "text", 1, {"number": ES, "message": 42}, ACME, 400, "invalid_field"),
    ("single", "text", 1, {"number": True, "message": "x"}, ACME, 400, "invalid_field"),
    ("single", "text", 1, {"number": ES, "message": "x", "Number ": ES}, ACME, 400,
     "duplicate_field"),
    ("single", "text", 1, {"number": ES, "message": "x" * 801}, ACME, 400, "text_too_long"),
    ("single", "image", 1, {"number": ES, "image": b64(PNG), "caption": "c" * 251}, ACME, 400,
     "caption_too_long"),
    ("single", "image", 1, {"number": ES, "image": b64(PNG), "caption": 7}, ACME, 400,
     "invalid_field"),
    ("single", "image", 1, {"number": ES, "image": "this is not base64!"}, ACME, 400,
     "bad_base64"),
    ("single", "image", 1, {"number": ES, "image": "QUJD=QUJD"}, ACME, 400, "bad_base64"),
    ("single", "image", 1, {"number": ES, "image": "QUJDR"}, ACME, 400, "bad_base64"),
    ("single", "image", 1, {"number": ES, "image": b64(b"plain text, not an image")}, ACME,
     400, "unsupported_image"),
    ("single", "document", 1, {"number": ES, "document": b64(PNG), "filename": "a.pdf"}, ACME,
     400, "unsupported_document"),
    ("single", "document", 1, {"number": ES, "document": b64(PDF), "filename": "run.exe"},
     ACME, 400, "bad_filename"),
    ("single", "document", 1, {"number": ES, "document": b64(PDF), "filename": "../ /"}, ACME,
     400, "bad_filename"),
    ("single", "document", 1, {"number": ES, "document": b64(PDF)}, ACME, 400,
     "missing_field"),
    ("single", "url", 1, {"number": ES, "url": "javascript:alert(1)"}, ACME, 400,
     "invalid_url"),
    ("single", "url", 1, {"number": ES, "url": "https://a b.example/"}, ACME, 400,
     "invalid_url"),
    ("group", "text", 1, {"group_name": "", "message": "x"}, ACME, 400, "invalid_field"),
    ("group", "text", 1, {"group_name": "Team Rocket", "group_admin": "boss", "message": "x"},
     ACME, 400, "invalid_field"),
    # 401
    ("single", "text", 1, TEXT, {}, 401, "missing_credentials"),
    ("single", "text", 1, TEXT, {"X-WM-CLIENT-ID": "dev@acme.example"}, 401,
     "missing_credentials"),
    ("single", "text", 1, TEXT, {"X-WM-CLIENT-SECRET": "acme-secret"}, 401,
     "missing_credentials"),
    # 403
    ("single", "image", 1, {"number": ES, "image": b64(PNG)}, creds("texter"), 403,
     "feature_not_in_plan"),
    ("group", "text", 1, {"group_name": "Team Rocket", "message": "x"}, creds("texter"), 403,
     "feature_not_in_plan"),
    # 404
    ("single", "text", 9, TEXT, ACME, 404, "unknown_instance"),
    ("single", "text", 0, TEXT, ACME, 404, "unknown_instance"),
    ("single", "text", 2, TEXT, BETA, 404, "unknown_instance"),  # not in its instances
    ("single", "text", 3, TEXT, ACME, 404, "unknown_instance"),  # owned by another
    ("group", "text", 1, {"group_name": "Team Magma", "message": "x"}, ACME, 404,
     "unknown_group"),
    # 413
    ("single", "image", 1, {"number": ES, "image": b64(b"\x89PNG\r\n\x1a\n" + bytes(3 * MB))},
     ACME, 413, "image_too_large"),
    ("single", "image", 1, {"number": ES, "image": b64(b"\xff\xd8\xff" + bytes(2 * MB))}, ACME,
     413, "image_too_large"),
    ("single", "document", 1, {"number": ES, "document": b64(b"%PDF-" + bytes(3 * MB)),
                               "filename": "big.pdf"}, ACME, 413, "document_too_large"),
    # 470
    ("single", "image", 1, {"number": ES, "image": ""}, ACME, 470, "empty_media"),
    ("group", "document", 1, {"group_name": "Team Rocket", "document": "data:application/pdf;"
                              "base64,", "filename": "a.pdf"}, ACME, 470, "empty_media"),
    # 471
    ("single", "text", 1, {"number": "123", "message": "x"}, ACME, 471, "invalid_number"),
    ("single", "text", 1, {"number": "+999123", "message": "x"}, ACME, 471, "invalid_number"),
    ("single", "text", 1, {"number": "+34 6OO OOO OO1", "message": "x"}, ACME, 471,
     "invalid_number"),
    # 472
    ("single", "text", 1, {"number": OTHER, "message": "x"}, ACME, 472, "not_registered"),
    ("single", "text", 1, {"number": GONE, "message": "x"}, ACME, 472, "not_registered"),
    ("single", "text", 3, TEXT, creds("owner"), 200, ""),  # registered on 3 only ...
    ("single", "text", 1, {"number": ES, "message": "x"}, creds("owner"), 404,
     "unknown_instance"),
    # 474
    ("single", "text", 1, TEXT, {**ACME, "X-WM-CLIENT-SECRET": "acme-secret2"}, 474,
     "invalid_credentials"),
    ("single", "text", 1, TEXT, {"X-WM-CLIENT-ID": "nobody@x.example",
                                 "X-WM-CLIENT-SECRET": "acme-secret"}, 474,
     "invalid_credentials"),
    ("single", "text", 1, TEXT, creds("late"), 474, "subscription_expired"),
    ("single", "text", 1, TEXT, creds("early"), 474, "subscription_not_started"),
]


@pytest.mark.parametrize(("audience", "kind", "instance", "body", "headers", "status", "slug"),
                         CASES, ids=[f"{c[5]}-{c[6] or 'ok'}-{i}" for i, c in enumerate(CASES)])
async def test_error_table(api: TestClient, audience: str, kind: str, instance: int, body: Any,
                          headers: dict[str, str], status: int, slug: str) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await api.post(path(audience, kind, instance), data=io.BytesIO(data), headers=headers)
    if status == 200:
        assert resp.status == 200, await resp.text()
        return
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    answer = await resp.json()
    assert answer["error"] == slug and answer["error_message"]
    await wait_sent(api)
    assert await sent_by(api, "acme") == []
    assert await usage(api, "acme") == (0, 0)


async def test_unknown_group_says_how_to_register_it(api: TestClient) -> None:
    resp = await send(api, "group", "text", {"group_name": "Team Magma", "message": "x"})
    assert resp.status == 404
    text = (await resp.json())["error_message"]
    assert "Team Magma" in text and "+15550001111" in text and "say Hi there" in text


async def test_not_a_route_is_json_404(api: TestClient) -> None:
    resp = await api.post("/v3/whatsapp/single/video/message/1", json=TEXT, headers=ACME)
    assert resp.status == 404 and (await resp.json())["error"] == "not_found"
    resp = await api.get(path("single", "text"), headers=ACME)
    assert resp.status == 405 and (await resp.json())["error"] == "method_not_allowed"


async def test_huge_json_is_a_json_413(api: TestClient) -> None:
    from bot.app import MAX_BODY

    body = json.dumps({"number": ES, "message": "x", "pad": "y" * MAX_BODY}).encode()
    resp = await api.post(path("single", "text"), data=io.BytesIO(body), headers=ACME)
    assert resp.status == 413
    assert (await resp.json())["error"] == "payload_too_large"
    assert await usage(api) == (0, 0)


async def test_a_3_mb_pdf_fits_as_real_clients_encode_it(api: TestClient) -> None:
    """PHP's json_encode escapes "/" and chunk_split() wraps base64 in CRLF lines:
    a 3 MB document must still fit the body limit."""
    pdf = (b"%PDF-1.7\n" + bytes(range(256)) * (3 * MB // 256))[:3 * MB - 7] + b"\n%%EOF\n"
    assert len(pdf) == 3 * MB
    encoded = base64.encodebytes(pdf).decode().replace("\n", "\r\n")
    data = json.dumps({"number": ES, "document": encoded, "filename": "big.pdf",
                       "caption": "🙂" * 250}).replace("/", "\\/").encode()
    resp = await api.post(path("single", "document"), data=io.BytesIO(data), headers=ACME)
    assert resp.status == 200, await resp.text()
    one_more = b64(pdf + b"!")
    resp = await send(api, "single", "document", {"number": ES, "document": one_more,
                                                  "filename": "big.pdf"})
    assert resp.status == 413 and (await resp.json())["error"] == "document_too_large"


async def test_meta_numbers_take_jpeg_and_png_only(api: TestClient) -> None:
    from tests.send_helpers import GIF

    resp = await send(api, "single", "image", {"number": ES, "image": b64(GIF)}, instance=2)
    assert resp.status == 400 and (await resp.json())["error"] == "unsupported_image"


async def test_error_responses_are_never_500(api: TestClient) -> None:
    odd_bodies = [b"null", b"1", b'"x"', b"\xff\xfe", b'{"number": {"a": 1}, "message": []}',
                  b'{"number": "+34600000001", "message": null}',
                  b'{"number": 1e400, "message": "x"}', b'{"' + b"k" * 1000 + b'": 1}']
    for body in odd_bodies:
        for audience, kind in (("single", "text"), ("group", "image"), ("single", "document")):
            resp = await api.post(path(audience, kind), data=body, headers=ACME)
            assert 400 <= resp.status < 500, (body, await resp.text())
    assert await sent_by(api) == []
