"""Inbound media end to end: a user's file, announced by Meta, Twilio or WAHA,
fetched from the provider-shaped test server with the provider's credentials,
kept, and served by the signed link its message.received carries; a real
webhook receiver fetches the link as a subscriber would and gets the same
bytes. Size limits, the address rules, the bounded wait, forged and expired
links."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from bot.app import create_app
from bot.config.load import load_config
from bot.media_links import signed_link
from bot.web.keys import media_links_key
from reliability.common import free_port
from tests.conftest import ROOT, post_signed, sign, wait_for
from tests.graph import GraphState, graph_state_key
from tests.media_helpers import (
    FILES,
    PUBLIC,
    SID,
    TWILIO_NUMBER,
    TWILIO_TOKEN,
    local,
    media_config,
    meta_media,
)
from tests.twilio_server import TwilioState, twilio_app
from tests.waha import WahaState, post_waha, waha_app, waha_message, waha_state_key
from tests.webhook_helpers import ACME_SECRET, Hit, Receiver, verify

Make = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def twilio(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TwilioState:
    state = TwilioState(account_sid=SID, auth_token=TWILIO_TOKEN, public_url=PUBLIC)
    server = await aiohttp_server(twilio_app(state))
    state.api_url = str(server.make_url("")).rstrip("/")
    return state


@pytest.fixture
async def waha(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    return await aiohttp_server(waha_app())


@pytest.fixture
def waha_state(waha: TestServer) -> WahaState:
    return waha.app[waha_state_key]


@pytest.fixture
def media_storage(tmp_path: Path) -> str:
    """`[storage] url` of the app tests here (tests/store_contract runs some on each backend)."""
    return f"sqlite:///{tmp_path / 'wagate.db'}"


@pytest.fixture
def make(aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path,
         graph: TestServer, twilio: TwilioState, waha: TestServer, receiver: Receiver,
         media_storage: str) -> Make:
    async def build(media: str = "") -> TestClient:
        path = tmp_path / "wagate.toml"
        path.write_text(media_config(
            media_storage, graph=str(graph.make_url("")).rstrip("/"),
            twilio=twilio.api_url, waha=str(waha.make_url("")).rstrip("/"),
            receiver=receiver.base, media=media))
        client = await aiohttp_client(create_app(load_config(path)))
        fetched: list[tuple[int, str, bytes]] = []
        client.fetched = fetched  # type: ignore[attr-defined]

        async def subscriber(request: web.Request) -> web.Response:
            """What a subscriber does: verify, then fetch the link (through the
            proxy that public_url names: here, straight to the app)."""
            body = verify(Hit(request.path, {k.lower(): v for k, v in request.headers.items()},
                              await request.read(), 0.0), ACME_SECRET)
            url = body["data"].get("media", {}).get("url")
            if url:
                assert url.startswith(f"{PUBLIC}/media/")
                async with aiohttp.ClientSession() as session, session.get(
                        str(client.make_url(local(url)))) as resp:
                    fetched.append((resp.status, resp.headers.get("Content-Type", ""),
                                    await resp.read()))
            return web.Response(text="ok")

        receiver.script("/acme", *[subscriber] * 20)
        return client
    return build


async def received(receiver: Receiver, count: int = 1, timeout: float = 10.0) -> list[Any]:
    hits = await wait_for(lambda: len(receiver.on("/acme")) >= count and receiver.on("/acme"),
                          timeout)
    return [verify(h, ACME_SECRET)["data"] for h in hits]


def assert_served(client: TestClient, data: dict[str, Any], content: bytes, mime: str) -> None:
    media = data["media"]
    assert media["size"] == len(content)
    assert media["sha256"] == hashlib.sha256(content).hexdigest()
    assert media["mime_type"] == mime
    assert media["id"].startswith("m") and len(media["id"]) == 33
    assert media["expires_at"].endswith("Z")
    assert "error" not in media
    status, ctype, got = client.fetched[-1]  # type: ignore[attr-defined]
    assert (status, got) == (200, content)
    assert ctype == mime


# ---- each provider, each kind


@pytest.mark.parametrize("kind", list(FILES))
async def test_meta_files_of_each_kind_reach_the_subscriber_by_their_link(
        make: Make, graph_state: GraphState, receiver: Receiver, kind: str) -> None:
    client = await make()
    content, mime, filename = FILES[kind]
    graph_state.files["1234567890"] = (content, mime)
    resp = await post_signed(client, meta_media(kind, "1234567890", mime=mime,
                                                caption="my receipt" if kind == "image" else None,
                                                filename=filename))
    assert resp.status == 200
    [data] = await received(receiver)
    assert data["type"] == kind
    if filename:
        assert data["media"]["filename"] == filename
    await wait_for(lambda: client.fetched)  # type: ignore[attr-defined]
    assert_served(client, data, content, mime)
    # Fetched once, with the token, both steps (the lookup, then its url).
    asked = [r for r in graph_state.requests if r.path == "/v21.0/1234567890"]
    assert len(asked) == 1 and len(graph_state.downloads) == 1
    assert all(r.headers["Authorization"] == "Bearer test-access-token"
               for r in asked + graph_state.downloads)
    # The WhatsMate format keeps its shape: message = the caption or "".
    [wm] = await wait_for(lambda: receiver.on("/acme-wm"))
    assert "media" not in wm.json
    assert wm.json["message"] == ("my receipt" if kind == "image" else "")


async def test_twilio_media_url_is_fetched_with_the_account_credentials(
        make: Make, twilio: TwilioState, receiver: Receiver) -> None:
    client = await make()
    content, mime, _ = FILES["image"]
    twilio.files["ME" + "1" * 32] = (content, mime)
    sid = f"SM{time.monotonic_ns():032x}"
    form = {"MessageSid": sid, "SmsMessageSid": sid, "AccountSid": SID, "NumMedia": "1",
            "MediaUrl0": twilio.media_url("ME" + "1" * 32, sid), "MediaContentType0": mime,
            "From": "whatsapp:+34600000001", "To": f"whatsapp:{TWILIO_NUMBER}",
            "WaId": "34600000001", "Body": "", "MessageType": "image"}
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(f"{PUBLIC}/webhooks/twilio", form)
    resp = await client.post("/webhooks/twilio", data=form, headers={"X-Twilio-Signature": sig})
    assert resp.status == 200, await resp.text()
    [data] = await received(receiver)
    await wait_for(lambda: client.fetched)  # type: ignore[attr-defined]
    assert_served(client, data, content, mime)
    # The API with basic auth, then its redirect to where the file is kept.
    [api, kept] = twilio.file_requests
    assert api[0].endswith("/Media/ME" + "1" * 32) and api[1].startswith("Basic ")
    assert kept[0] == "/kept/ME" + "1" * 32


@pytest.mark.parametrize("older", [False, True], ids=["media.url", "mediaUrl"])
async def test_waha_media_url_is_fetched_with_its_api_key(
        make: Make, waha: TestServer, waha_state: WahaState, receiver: Receiver,
        older: bool) -> None:
    client = await make()
    content, mime, filename = FILES["document"]
    waha_state.files["file1.pdf"] = (content, mime)
    # WAHA names its files on the host it thinks it is: fetched from its base URL.
    url = "http://localhost:3000/api/files/default/file1.pdf"
    media = {"mediaUrl": url, "media": {"mimetype": mime, "filename": filename}} if older \
        else {"media": {"url": url, "mimetype": mime, "filename": filename}}
    resp = await post_waha(client, waha_message("", hasMedia=True, **media))
    assert resp.status == 200, await resp.text()
    [data] = await received(receiver)
    await wait_for(lambda: client.fetched)  # type: ignore[attr-defined]
    assert_served(client, data, content, mime)
    assert data["media"]["filename"] == filename
    [asked] = waha_state.of("/api/files/default/file1.pdf")
    assert asked.headers["X-Api-Key"] == "test-waha-api-key"


# ---- limits, rules, the bounded wait


async def test_a_file_over_its_kind_limit_is_not_kept_and_says_why(
        make: Make, graph_state: GraphState, receiver: Receiver) -> None:
    client = await make("[media.max_bytes]\nimage = 1000\n")
    graph_state.files["big"] = (b"\xff\xd8" + b"x" * 1500, "image/jpeg")
    graph_state.files["small"] = (b"\xff\xd8" + b"x" * 998, "image/jpeg")  # exactly 1000
    await post_signed(client, meta_media("image", "big"))
    await post_signed(client, meta_media("image", "small"))
    first, second = await received(receiver, 2)
    by_size = {d["media"].get("size"): d for d in (first, second)}
    assert set(by_size) == {None, 1000}
    assert "max_bytes" in by_size[None]["media"]["error"]
    assert "url" not in by_size[None]["media"]


async def test_a_sticker_over_the_default_limit_is_refused(
        make: Make, graph_state: GraphState, receiver: Receiver) -> None:
    client = await make()
    graph_state.files["st"] = (b"RIFF" + b"\x00" * (500 * 1024), "image/webp")
    await post_signed(client, meta_media("sticker", "st", mime="image/webp"))
    [data] = await received(receiver)
    assert "over [media] max_bytes (512000)" in data["media"]["error"]


async def test_a_media_url_elsewhere_follows_the_webhook_address_rules(
        make: Make, graph_state: GraphState, receiver: Receiver) -> None:
    client = await make()
    graph_state.files["x"] = (b"data", "image/jpeg")
    graph_state.download_base = "http://10.1.2.3:9"  # private, not allowed
    await post_signed(client, meta_media("image", "x"))
    [data] = await received(receiver)
    assert data["media"]["error"].startswith("refused:")
    assert "10.1.2.3" in data["media"]["error"]
    assert graph_state.downloads == []


async def test_the_delivery_waits_for_the_file_no_longer_than_delivery_wait(
        make: Make, graph_state: GraphState, receiver: Receiver) -> None:
    client = await make("fetch_timeout = 30\n")
    graph_state.files["slow"] = (b"data", "image/jpeg")
    graph_state.hold_downloads = asyncio.Event()
    started = time.monotonic()
    await post_signed(client, meta_media("image", "slow"))
    # delivery_wait is 10 s here: nothing arrives while the download hangs...
    await asyncio.sleep(1.0)
    assert receiver.on("/acme") == []
    graph_state.hold_downloads.set()  # ...and the file's arrival releases the delivery
    [data] = await received(receiver)
    assert data["media"]["size"] == 4 and time.monotonic() - started < 8


async def test_a_file_not_fetched_in_time_goes_with_media_error(
        aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path,
        graph: TestServer, twilio: TwilioState, waha: TestServer, receiver: Receiver) -> None:
    text = media_config(tmp_path / "w.db", graph=str(graph.make_url("")).rstrip("/"),
                        twilio=twilio.api_url, waha=str(waha.make_url("")).rstrip("/"),
                        receiver=receiver.base, wait=0.5)
    (tmp_path / "w.toml").write_text(text)
    client = await aiohttp_client(create_app(load_config(tmp_path / "w.toml")))
    state: GraphState = graph.app[graph_state_key]
    state.files["slow"] = (b"data", "image/jpeg")
    state.hold_downloads = asyncio.Event()
    started = time.monotonic()
    await post_signed(client, meta_media("image", "slow"))
    [data] = await received(receiver)
    assert 0.4 < time.monotonic() - started < 5
    assert data["media"]["error"].startswith("the file was not fetched in time")
    state.hold_downloads.set()


# ---- the links


async def test_forged_changed_and_expired_links_are_refused(
        make: Make, graph_state: GraphState, receiver: Receiver) -> None:
    client = await make()
    graph_state.files["f"] = (b"\xff\xd8secret", "image/jpeg")
    await post_signed(client, meta_media("image", "f"))
    [data] = await received(receiver)
    good = local(data["media"]["url"])
    assert (await client.get(good)).status == 200
    media_id = data["media"]["id"]
    exp = good.split("exp=")[1].split("&")[0]
    for bad in (good[:-1] + ("0" if good[-1] != "0" else "1"),  # one digit of the signature
                good.replace(f"exp={exp}", f"exp={int(exp) + 1}"),  # a longer life
                f"/media/{media_id}", f"/media/{media_id}?exp={exp}&sig=",
                f"/media/{media_id}?exp=x&sig=abc"):
        resp = await client.get(bad)
        body = await resp.json()
        assert (resp.status, body["error"]) == (403, "bad_signature"), bad
        assert "not one wagate signed" in body["error_message"]
    key = await client.app[media_links_key].key()
    expired = local(signed_link(PUBLIC, key, media_id, int(time.time()) - 1))
    resp = await client.get(expired)
    assert (resp.status, (await resp.json())["error"]) == (403, "url_expired")
    unknown = local(signed_link(PUBLIC, key, "m" + "0" * 32, int(time.time()) + 60))
    resp = await client.get(unknown)
    assert (resp.status, (await resp.json())["error"]) == (404, "media_gone")
    # Not an id of ours at all: not this route's.
    assert (await client.get("/media/../admin")).status == 404


async def test_media_fetches_are_counted(make: Make, graph_state: GraphState,
                                         receiver: Receiver) -> None:
    client = await make()
    graph_state.files["c"] = (b"c", "image/jpeg")
    await post_signed(client, meta_media("image", "c"))
    await received(receiver)
    text = await (await client.get("/metrics")).text()
    assert 'wagate_media_fetches_total{outcome="fetched"} 1.0' in text


# ---- killed between receipt and fetch


async def _serve(config: Path, port: int) -> asyncio.subprocess.Process:
    """`wagate serve` in a process of its own, answering; its output in `config`.log."""
    log = config.with_suffix(".log")
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", "--config", str(config), cwd=ROOT,
            stdout=out, stderr=asyncio.subprocess.STDOUT)
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"wagate exited: {await asyncio.to_thread(log.read_text)}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("wagate did not start")


async def test_a_service_killed_between_receipt_and_fetch_fetches_at_restart(
        tmp_path: Path, graph: TestServer, graph_state: GraphState, twilio: TwilioState,
        waha: TestServer, receiver: Receiver) -> None:
    port = free_port()
    config = tmp_path / "wagate.toml"
    config.write_text(media_config(
        tmp_path / "wagate.db", graph=str(graph.make_url("")).rstrip("/"),
        twilio=twilio.api_url, waha=str(waha.make_url("")).rstrip("/"), receiver=receiver.base,
        port=port, public_url=f"http://127.0.0.1:{port}", wait=120))
    content, mime, _ = FILES["image"]
    graph_state.files["k1"] = (content, mime)
    graph_state.hold_downloads = asyncio.Event()  # the first fetch hangs in flight
    fetched: list[bytes] = []

    async def subscriber(request: web.Request) -> web.Response:
        body = verify(Hit(request.path, {k.lower(): v for k, v in request.headers.items()},
                          await request.read(), 0.0), ACME_SECRET)
        async with aiohttp.ClientSession() as session, session.get(
                body["data"]["media"]["url"]) as resp:
            assert resp.status == 200
            fetched.append(await resp.read())
        return web.Response(text="ok")

    receiver.script("/acme", subscriber, subscriber)
    proc = await _serve(config, port)
    try:
        payload = json.dumps(meta_media("image", "k1", caption="receipt")).encode()
        async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{port}/webhooks/meta", data=payload,
                headers={"Content-Type": "application/json",
                         "X-Hub-Signature-256": sign(payload)}) as resp:
            assert resp.status == 200
        await wait_for(lambda: graph_state.downloads, 10)  # the fetch is under way...
        proc.send_signal(signal.SIGKILL)  # ...and the service dies, no shutdown of any kind
        await proc.wait()
        assert receiver.on("/acme") == []
        graph_state.hold_downloads.set()
        proc = await _serve(config, port)  # the same store
        await wait_for(lambda: fetched, 20)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    [hit] = receiver.on("/acme")  # told once
    data = verify(hit, ACME_SECRET)["data"]
    assert data["text"] == "receipt"
    assert data["media"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert fetched == [content]
    assert len(graph_state.downloads) == 2  # the one killed, the one after restart
