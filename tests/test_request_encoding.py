"""Compressed request bodies, through the real app: wagate takes bodies
uncompressed only, and answers any other Content-Encoding with a JSON 415 at
once, on every endpoint that reads a body, before reading it (so a body that
never decodes cannot hold the request open)."""

from __future__ import annotations

import gzip
import io
import json
import random
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.web.keys import inflight_key
from tests.conftest import ADMIN, meta_text, sign, wait_for
from tests.send_helpers import ACME, DEFAULT, path, usage

MakeClient = Callable[..., Awaitable[TestClient]]

# A request left hanging fails here, not in a timing assertion.
PATIENCE = aiohttp.ClientTimeout(total=30)

INBOUND = {"instance": 1, "from": "+34600000001", "text": "Hola"}
SEND = {"number": "+34600000001", "message": "hi"}


def bogus_deflate(size: int) -> bytes:
    """A deflate stream cut short: it never decodes to its end."""
    return zlib.compress(random.Random(size).randbytes(size * 3))[:size]


def _endpoints() -> list[tuple[str, str, dict[str, str], Any]]:
    """(name, path, headers, JSON body) of every route that reads a body."""
    return [
        ("send API", path("single", "text"), ACME, SEND),
        ("sandbox", "/sandbox/inbound", ADMIN, INBOUND),
        ("meta webhook", "/webhooks/meta", {}, meta_text("Hola")),
        ("admin opt-out", "/admin/registrations/+34600000001/opt-out", ADMIN, {"instance": 1}),
    ]


ENDPOINTS = _endpoints()
each_endpoint = pytest.mark.parametrize(("name", "url", "headers", "body"), ENDPOINTS,
                                        ids=[e[0] for e in ENDPOINTS])


async def post(client: TestClient, url: str, headers: dict[str, str], body: bytes,
               encoding: str) -> aiohttp.ClientResponse:
    # Signed over the bytes as sent, as Meta would sign them.
    return await client.post(url, data=io.BytesIO(body), timeout=PATIENCE, headers={
        **headers, "Content-Type": "application/json", "Content-Encoding": encoding,
        "X-Hub-Signature-256": sign(body)})


async def assert_415(resp: aiohttp.ClientResponse) -> None:
    assert resp.status == 415, await resp.text()
    assert await resp.json() == {
        "error_message": f"Content-Encoding {resp.request_info.headers['Content-Encoding']!r}"
                         " is not accepted: send the body uncompressed",
        "error": "unsupported_encoding"}
    assert resp.headers["Accept-Encoding"] == "identity"


@each_endpoint
@pytest.mark.parametrize("encoding", ["deflate", "gzip", "x-gzip", "compress"])
async def test_a_body_that_does_not_decode_is_415(make_client: MakeClient, name: str, url: str,
                                                  headers: dict[str, str], body: Any,
                                                  encoding: str) -> None:
    client = await make_client(DEFAULT)
    await assert_415(await post(client, url, headers, b"\x78\x9c not deflate at all", encoding))


@each_endpoint
async def test_a_compressed_body_is_415_even_when_it_decodes(
        make_client: MakeClient, name: str, url: str, headers: dict[str, str],
        body: Any) -> None:
    client = await make_client(DEFAULT)
    for encoding, packed in (("gzip", gzip.compress(json.dumps(body).encode())),
                             ("deflate", zlib.compress(json.dumps(body).encode()))):
        await assert_415(await post(client, url, headers, packed, encoding))
    # nothing was taken in: no registration, no message
    resp = await client.get("/admin/registrations/+34600000001", headers=ADMIN)
    assert resp.status == 404, await resp.text()
    assert await usage(client) == (0, 0)


async def test_identity_is_accepted(make_client: MakeClient) -> None:
    client = await make_client(DEFAULT)
    resp = await post(client, "/sandbox/inbound", ADMIN, json.dumps(INBOUND).encode(),
                      "identity")
    assert resp.status == 200, await resp.text()


@each_endpoint
async def test_a_bogus_deflate_body_of_128_kib_is_answered_at_once(
        make_client: MakeClient, name: str, url: str, headers: dict[str, str],
        body: Any) -> None:
    client = await make_client(DEFAULT)
    resp = await post(client, url, headers, bogus_deflate(140 * 1024), "deflate")
    await assert_415(resp)
    await wait_for(lambda: client.app[inflight_key].count == 0)
