"""Compressed request bodies, through the real app: wagate takes bodies
uncompressed only, and answers any other Content-Encoding with a JSON 415 at
once, on every endpoint that reads a body, before reading it (so a body that
never decodes cannot hold the request open)."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import random
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import Config
from bot.config.load import load_config
from bot.web.keys import inflight_key
from tests.conftest import ADMIN, base_config, meta_text, sign, wait_for
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


@pytest.fixture
def short_body_timeout(tmp_path: Path, config_path: Path, graph: Any) -> Config:
    text = base_config(tmp_path / "wagate.db", str(graph.make_url("")).rstrip("/"), DEFAULT)
    config_path.write_text(text.replace("port = 0", "port = 0\nbody_timeout = 0.3"))
    return load_config(config_path)


@pytest.mark.parametrize("name", [e[0] for e in ENDPOINTS])
async def test_a_body_that_stops_arriving_is_answered_408(
        aiohttp_client: Callable[..., Awaitable[TestClient]], short_body_timeout: Config,
        name: str) -> None:
    # A client that sends half a body and stalls must not hold the request (and
    # its in-flight slot) open for ever: [server] body_timeout bounds the read.
    client = await aiohttp_client(create_app(short_body_timeout))
    route, headers = next((p, h) for n, p, h, _ in ENDPOINTS if n == name)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"POST {route} HTTP/1.1\r\nHost: x\r\n{head}Content-Type: application/json\r\n"
                 "Content-Length: 1000\r\n\r\n{\"number\": ".encode())
    await writer.drain()
    try:
        async with asyncio.timeout(20):  # the failure mode, not a timing assertion
            status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
            length = next(int(line.split(":")[1]) for line in lines
                          if line.lower().startswith("content-length:"))
            body = json.loads(await reader.readexactly(length))
    finally:
        writer.close()
    assert status_line == "HTTP/1.1 408 Request Timeout"
    assert body["error"] == "body_timeout" and "Connection: close" in lines
    await wait_for(lambda: client.app[inflight_key].count == 0)
