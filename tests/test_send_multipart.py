"""The send API takes multipart/form-data, the first thing many people try
(`curl -F number=… -F image=@photo.png`): real curl against the real app, the
file part arriving at the provider byte for byte, and what it refuses said
by name."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from bot.content import MAX_IMAGE
from tests.conftest import wait_for
from tests.graph import GraphState
from tests.send_helpers import ACME, DEFAULT, JPEG, PDF, PNG, b64, path, usage
from tests.test_send_meta import _api as meta_api

ES = "+34600000001"
MakeClient = Callable[..., Awaitable[TestClient]]


async def curl(client: TestClient, url_path: str, *fields: str) -> tuple[int, dict[str, Any]]:
    """`curl -F …` as a user types it; (status, JSON answer)."""
    args = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}",
            *(f"-H{name}: {value}" for name, value in ACME.items())]
    for field in fields:
        args += ["-F", field]
    proc = await asyncio.create_subprocess_exec(
        *args, str(client.make_url(url_path)), stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    body, _, status = out.decode().rpartition("\n")
    return int(status), json.loads(body)


async def test_curl_f_sends_files_and_fields_on_every_kind(
        make_client: MakeClient, graph_state: GraphState, tmp_path: Path) -> None:
    api = await meta_api(make_client, graph_state)
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)  # "\r\n" and NUL bytes inside: cut from the body exactly
    invoice = tmp_path / "Factura nº 7.pdf"
    invoice.write_bytes(PDF)
    sends = [
        ("text", [f"number={ES}", "message=Hola (y)"]),
        ("image", [f"number={ES}", f"image=@{photo}", "caption=Look"]),
        ("document", [f"number={ES}", f"document=@{invoice}"]),  # its name from the file
        ("document", [f"number={ES}", f"document=@{invoice};type=application/pdf",
                      "filename=plan"]),  # a filename field wins
        ("image", [f"number={ES}", f"image={b64(JPEG)}"]),  # base64 in a plain field
    ]
    for kind, fields in sends:
        status, body = await curl(api, path("single", kind, 2), *fields)
        assert status == 200 and body["status"] == "queued", (kind, body)
    await wait_for(lambda: len(graph_state.messages) == len(sends))
    uploads = {bytes(u.form["file"]["bytes"]): u.form["file"]["filename"]
               for u in graph_state.uploads}
    assert sorted(uploads) == sorted([PNG, PDF, JPEG])
    names = sorted(u.form["file"]["filename"] for u in graph_state.uploads if
                   u.form["file"]["bytes"] == PDF)
    assert names == ["Factura nº 7.pdf", "plan.pdf"]
    texts = [m.json["text"]["body"] for m in graph_state.messages if m.json["type"] == "text"]
    assert texts == ["Hola 👍"]
    assert await usage(api) == (5, 1)


async def test_what_multipart_cannot_carry_is_refused_by_name(
        make_client: MakeClient, graph_state: GraphState, tmp_path: Path) -> None:
    api = await meta_api(make_client, graph_state)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    big = tmp_path / "big.png"
    big.write_bytes(PNG + bytes(MAX_IMAGE))
    cases = [
        ("text", [f"number={ES}", f"message=@{note}"], 400, "invalid_field",
         "message must be a plain field, not a file"),
        ("image", [f"number={ES}", f"image=@{note}"], 400, "unsupported_image",
         "image must be a JPEG, PNG, WebP or GIF file"),
        ("image", [f"number={ES}", f"image=@{big}"], 413, "image_too_large",
         "image is 2.0 MB; the limit is 2 MB"),
        ("document", [f"number={ES}", f"document=@{note}"], 400, "bad_filename",
         "filename must be a file name ending in .pdf"),  # the file's own name: note.txt
        ("document", [f"number={ES}", f"document=@{note}", "filename=note.pdf"], 400,
         "unsupported_document", "document must be a PDF file"),
    ]
    for kind, fields, status, slug, message in cases:
        got, body = await curl(api, path("single", kind, 2), *fields)
        assert (got, body["error"]) == (status, slug), (kind, body)
        assert message in body["error_message"], body
    assert await usage(api) == (0, 0) and graph_state.messages == []


@pytest.mark.parametrize(("body", "why"), [
    (b"--b\r\nContent-Disposition: form-data; name=\"number\"\r\n\r\n+34600000001\r\n",
     "closing boundary"),
    (b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n", "Content-Disposition"),
    (b"--b\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n\xff\xfe\r\n--b--\r\n",
     "not UTF-8 text"),
])
async def test_a_malformed_multipart_body_is_a_400_that_says_what(
        make_client: MakeClient, body: bytes, why: str) -> None:
    client = await make_client(DEFAULT)
    resp = await client.post(path("single", "text"), data=io.BytesIO(body), headers={
        **ACME, "Content-Type": "multipart/form-data; boundary=b"})
    assert resp.status == 400, await resp.text()
    answer = await resp.json()
    assert answer["error"] == "malformed_multipart" and why in answer["error_message"], answer


async def test_repeated_and_missing_fields_are_checked_like_json(
        make_client: MakeClient) -> None:
    client = await make_client(DEFAULT)
    form = FormData()
    form.add_field("number", ES)
    form.add_field("Number", ES)
    form.add_field("message", "hi")
    resp = await client.post(path("single", "text"), data=form, headers=ACME)
    assert resp.status == 400 and (await resp.json())["error"] == "duplicate_field"
    form = FormData()
    form.add_field("number", ES)
    form.add_field("image", PNG, filename="x.png", content_type="image/png")
    resp = await client.post(path("single", "text"), data=form, headers=ACME)
    assert resp.status == 400 and (await resp.json())["error"] == "missing_field"
