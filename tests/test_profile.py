"""The gateway number's business profile: from the config or the admin API,
applied through the provider (Meta's resumable upload and business profile on
the local Graph-shaped server, WAHA's profile endpoints, the sandbox's record),
again only when it changed, failures shown and never fatal."""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.config import ConfigError
from bot.config.load import load_config
from bot.providers import registry, sandbox
from tests.conftest import ADMIN, base_config, wait_for
from tests.graph import GraphState
from tests.send_helpers import JPEG, PDF, PNG
from tests.waha import waha_app, waha_config, waha_state_key

MakeClient = Callable[..., Awaitable[TestClient]]
META_PROFILE = """
[instances.profile]
picture = "logo.jpg"
about = "Order updates"
description = "Acme ships things."
email = "help@acme.example"
websites = ["https://acme.example"]
"""


def write(tmp_path: Path, graph: TestServer, extra: str, *, app_id: bool = True) -> Path:
    (tmp_path / "logo.jpg").write_bytes(JPEG)
    text = base_config(tmp_path / "wagate.db", str(graph.make_url("")).rstrip("/"), extra)
    if app_id:
        text = text.replace('api_version = "v21.0"', 'api_version = "v21.0"\napp_id = "4242"')
    path = tmp_path / "wagate.toml"
    path.write_text(text)
    return path


async def profile(client: TestClient, instance: int) -> dict[str, Any]:
    resp = await client.get(f"/admin/instances/{instance}/profile", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def state_of(client: TestClient, instance: int) -> dict[str, Any] | None:
    return (await profile(client, instance))["state"]


async def test_meta_profile_uploads_the_picture_then_sets_the_profile(
        tmp_path: Path, graph: TestServer, graph_state: GraphState,
        aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    client = await aiohttp_client(create_app(load_config(write(tmp_path, graph, META_PROFILE))))
    await wait_for(lambda: state_of(client, 2))
    session, upload = [r for r in graph_state.requests if "upload" in r.path]
    assert session.path == "/v21.0/4242/uploads"
    assert session.json == {"file_name": "profile", "file_length": str(len(JPEG)),
                            "file_type": "image/jpeg"}
    assert upload.path.startswith("/v21.0/upload:SESSION")
    assert upload.headers["Authorization"] == "OAuth test-access-token"
    assert upload.form == {"bytes": JPEG}
    (call,) = graph_state.profiles
    assert call.path == "/v21.0/109876543210/whatsapp_business_profile"
    handle = "4::HANDLE" + upload.path.split("upload:")[1]
    assert call.json == {"messaging_product": "whatsapp", "about": "Order updates",
                         "description": "Acme ships things.", "email": "help@acme.example",
                         "websites": ["https://acme.example"], "profile_picture_handle": handle}
    shown = await profile(client, 2)
    assert shown["source"] == "config" and shown["state"]["status"] == "applied"
    assert shown["profile"]["picture"]["bytes"] == len(JPEG)
    ready = await (await client.get("/readyz")).json()
    assert ready["details"]["profiles"]["2"]["status"] == "applied"


async def test_a_reload_applies_the_profile_only_when_it_changed(
        tmp_path: Path, graph: TestServer, graph_state: GraphState,
        aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    path = write(tmp_path, graph, META_PROFILE)
    client = await aiohttp_client(create_app(load_config(path)))
    await wait_for(lambda: len(graph_state.profiles) == 1)
    assert (await client.post("/admin/reload", headers=ADMIN)).status == 200
    await client.post("/admin/reload", headers=ADMIN)
    path.write_text(path.read_text().replace("Order updates", "Orders and returns"))
    assert (await client.post("/admin/reload", headers=ADMIN)).status == 200
    await wait_for(lambda: len(graph_state.profiles) == 2)
    assert graph_state.profiles[1].json["about"] == "Orders and returns"
    assert len(graph_state.profiles) == 2  # the two unchanged reloads applied nothing


async def test_a_refused_profile_is_shown_not_fatal(
        tmp_path: Path, graph: TestServer, graph_state: GraphState,
        aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    graph_state.fail_next(100, "Invalid parameter")
    client = await aiohttp_client(create_app(load_config(write(tmp_path, graph, META_PROFILE))))
    state = await wait_for(lambda: state_of(client, 2))
    assert state["status"] == "failed" and "Invalid parameter" in state["error"]
    ready = await client.get("/readyz")
    assert ready.status == 200
    problems = (await ready.json())["details"]["profile_problems"]
    assert problems and "instance 2: profile failed" in problems[0]


async def test_meta_picture_without_app_id_is_a_readable_failure(
        tmp_path: Path, graph: TestServer, graph_state: GraphState,
        aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    config = load_config(write(tmp_path, graph, META_PROFILE, app_id=False))
    client = await aiohttp_client(create_app(config))
    state = await wait_for(lambda: state_of(client, 2))
    assert state["status"] == "failed" and "app_id" in state["error"]
    assert graph_state.profiles == []


async def test_waha_sets_about_and_picture_and_says_what_it_cannot(
        tmp_path: Path, graph: TestServer,
        aiohttp_server: Callable[..., Awaitable[TestServer]],
        aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    waha = await aiohttp_server(waha_app())
    extra = waha_config(str(waha.make_url("")).rstrip("/"), extra_instance=(
        '\n[instances.profile]\npicture = "logo.jpg"\nabout = "Order updates"\n'
        'email = "help@acme.example"\n'))
    client = await aiohttp_client(create_app(load_config(write(tmp_path, graph, extra))))
    state = await wait_for(lambda: state_of(client, 3))
    assert state["status"] == "partial" and state["not_supported"] == ["email"]
    assert state["applied"] == ["about", "picture"]
    calls = {r.path: r.json for r in waha.app[waha_state_key].requests if r.method == "PUT"}
    assert calls["/api/default/profile/status"] == {"status": "Order updates"}
    picture = calls["/api/default/profile/picture"]["file"]
    assert picture["mimetype"] == "image/jpeg" and base64.b64decode(picture["data"]) == JPEG


async def test_admin_sets_a_sandbox_profile_and_status_shows_it(
        make_client: MakeClient) -> None:
    client = await make_client()
    assert (await profile(client, 1))["profile"] is None
    resp = await client.put("/admin/instances/1/profile", headers=ADMIN, json={
        "about": "Hi there", "websites": ["https://a.example", "https://b.example"],
        "picture": "data:image/png;base64," + base64.b64encode(PNG).decode()})
    assert resp.status == 200, await resp.text()
    shown = await resp.json()
    assert shown["source"] == "admin" and shown["state"]["status"] == "applied"
    assert shown["state"]["applied"] == ["about", "picture", "websites"]
    assert shown["profile"]["picture"]["type"] == "image/png"
    ready = await (await client.get("/readyz")).json()
    assert ready["details"]["profiles"]["1"]["source"] == "admin"


async def test_a_provider_without_profile_support_says_so(
        make_config: Callable[..., Any], aiohttp_client: Callable[..., Awaitable[TestClient]],
        ) -> None:
    plain = dataclasses.replace(sandbox.PROVIDER, make_profiler=None,
                                profile_fields=frozenset())
    providers = tuple(plain if p.name == "sandbox" else p for p in registry.PROVIDERS)
    client = await aiohttp_client(create_app(make_config(), providers=providers))
    resp = await client.put("/admin/instances/1/profile", headers=ADMIN,
                            json={"about": "Hi"})
    shown = await resp.json()
    assert shown["supported_fields"] == [] and shown["state"]["status"] == "unsupported"
    assert "cannot set the business profile" in shown["state"]["error"]


@pytest.mark.parametrize("path, body, status, slug", [
    ("/admin/instances/9/profile", {"about": "x"}, 404, "unknown_instance"),
    ("/admin/instances/²/profile", {"about": "x"}, 404, "unknown_instance"),
    ("/admin/instances/" + "9" * 5000 + "/profile", {"about": "x"}, 404, "unknown_instance"),
    ("/admin/instances/1/profile", {}, 400, "invalid_profile"),
    ("/admin/instances/1/profile", {"email": "nope"}, 400, "invalid_profile"),
    ("/admin/instances/1/profile", {"about": "x" * 140}, 400, "invalid_profile"),
    ("/admin/instances/1/profile", {"websites": "https://a"}, 400, "invalid_profile"),
    ("/admin/instances/1/profile", {"websites": ["ftp://a"]}, 400, "invalid_profile"),
    ("/admin/instances/1/profile", {"picture": "***"}, 400, "invalid_profile"),
    ("/admin/instances/1/profile", {"picture": base64.b64encode(PDF).decode()}, 400,
     "invalid_profile"),
    ("/admin/instances/1/profile", {"colour": "red"}, 400, "invalid_profile"),
    ("/admin/instances/1/profile", ["about"], 400, "malformed_json"),
])
async def test_bad_profile_requests_are_4xx(client: TestClient, path: str, body: Any,
                                            status: int, slug: str) -> None:
    resp = await client.put(path, headers=ADMIN, json=body)
    assert resp.status == status, await resp.text()
    assert (await resp.json())["error"] == slug


async def test_profile_routes_need_the_admin_token(client: TestClient) -> None:
    assert (await client.get("/admin/instances/1/profile")).status == 401
    assert (await client.put("/admin/instances/1/profile", json={"about": "x"})).status == 401


@pytest.mark.parametrize("table, error", [
    ('picture = "missing.jpg"', "cannot read"),
    ('picture = "wagate.toml"', "JPEG or PNG"),
    ('websites = "https://a.example"', "websites"),
    ('colour = "red"', "unknown key"),
    ("", "sets nothing"),
])
def test_check_config_validates_the_profile(tmp_path: Path, table: str, error: str) -> None:
    path = tmp_path / "wagate.toml"
    path.write_text(base_config(tmp_path / "db") + f"\n[instances.profile]\n{table}\n")
    with pytest.raises(ConfigError, match=rf"instances\[1\]\.profile.*{error}"):
        load_config(path)


@pytest.mark.parametrize("raw, status", [
    (b"", 400), (b"null", 400), (b"\xff" * 100, 400), (b"[" * 50_000 + b"]" * 50_000, 400),
    (b'{"about": "\\u0000"}', 400), (b'{"picture": "' + b"A" * (9 * 1024 * 1024) + b'"}', 413),
])
async def test_hostile_profile_bodies_are_4xx(client: TestClient, raw: bytes,
                                              status: int) -> None:
    resp = await client.put("/admin/instances/1/profile", data=io.BytesIO(raw),
                            headers={**ADMIN, "Content-Type": "application/json"})
    assert resp.status == status, await resp.text()
    assert (await resp.json())["error"]
    assert (await profile(client, 1))["profile"] is None
