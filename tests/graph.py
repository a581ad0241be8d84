"""A local Graph-API-shaped server: a real aiohttp app answering like Meta's
Cloud API, recording every request, with scripted failures."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class GraphRecord:
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, Any] | None = None
    answer: Any = None  # what the server answered (a success's JSON)


WINDOW_SECONDS = 24 * 3600


@dataclass
class GraphTemplate:
    """A template as approved at Meta: its languages, body parameters, media header."""

    languages: frozenset[str]
    parameters: int = 0
    parameter_names: tuple[str, ...] = ()
    header: str | None = None  # image | document


@dataclass
class GraphWindow:
    """Meta's customer-service window, by this server's own clock: a free-form
    message to a user whose last message (`user_wrote`) is over 24 hours old,
    or who never wrote, is refused with 131047 (`enforce`). Meta tells that in
    a later status (`asynchronous`: the send is accepted and its wamid listed
    in `refused`) or in the send's answer. Template messages are checked
    against `templates` (132001 unknown name or language, 132000 parameter
    count, 132012 header)."""

    enforce: bool = False
    asynchronous: bool = False
    last_inbound: dict[str, float] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    templates: dict[str, GraphTemplate] = field(default_factory=dict)

    def user_wrote(self, user: str, at: float | None = None) -> None:
        self.last_inbound[user.lstrip("+")] = time.time() if at is None else at

    def refusal(self, body: dict[str, Any]) -> tuple[int, str] | None:
        """Meta's error (code, title) for this /messages body, None when it goes."""
        if body.get("type") == "template":
            return _template_refusal(self.templates, body.get("template"))
        if not self.enforce or body.get("recipient_type") == "group":
            return None
        user = str(body.get("recipient") or body.get("to") or "")
        last = self.last_inbound.get(user)
        if last is None or time.time() - last > WINDOW_SECONDS:
            return 131047, "Re-engagement message"
        return None


def _template_refusal(templates: dict[str, GraphTemplate], sent: Any) -> tuple[int, str] | None:
    if not isinstance(sent, dict):
        return 100, "Invalid parameter"
    approved = templates.get(str(sent.get("name")))
    language = sent.get("language")
    if (approved is None or not isinstance(language, dict)
            or language.get("code") not in approved.languages):
        return 132001, "Template name does not exist in the translation"
    components = {c.get("type"): c for c in sent.get("components", []) if isinstance(c, dict)}
    body = components.get("body", {}).get("parameters", [])
    if approved.parameter_names:
        names = [p.get("parameter_name") for p in body]
        if sorted(names) != sorted(approved.parameter_names):
            return 132000, "Number of parameters does not match the expected number of params"
    if len(body) != (len(approved.parameter_names) or approved.parameters) or not all(
            p.get("type") == "text" and str(p.get("text") or "").strip()
            and "\n" not in p["text"] for p in body):
        return 132000, "Number of parameters does not match the expected number of params"
    header = components.get("header", {}).get("parameters", [])
    kinds = [p.get("type") for p in header if isinstance(p, dict) and isinstance(
        p.get(p.get("type")), dict) and p[p["type"]].get("id")]
    if kinds != ([approved.header] if approved.header else []):
        return 132012, "Parameter format does not match format in the created template"
    return None


@dataclass
class GraphState:
    requests: list[GraphRecord] = field(default_factory=list)
    # Scripted answers for /messages: (status, body, headers); empty = success.
    failures: deque[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=deque)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    window: GraphWindow = field(default_factory=GraphWindow)
    # Files users sent, by media id: (bytes, mime type), served as Graph does
    # (GET /{version}/{media-id} -> its url; GET the url, both with the token).
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    # Set: a download waits for it (a fetch caught in flight).
    hold_downloads: asyncio.Event | None = None
    # Where the media urls point (another host, to test the address rules).
    download_base: str | None = None

    @property
    def downloads(self) -> list[GraphRecord]:
        return [r for r in self.requests if r.path.startswith("/download/")]

    @property
    def messages(self) -> list[GraphRecord]:
        return [r for r in self.requests if r.path.endswith("/messages")]

    @property
    def uploads(self) -> list[GraphRecord]:
        return [r for r in self.requests if r.path.endswith("/media")]

    @property
    def profiles(self) -> list[GraphRecord]:
        return [r for r in self.requests if r.path.endswith("/whatsapp_business_profile")]

    @property
    def picture_uploads(self) -> list[GraphRecord]:
        """Bytes sent to a resumable upload session (`form["bytes"]`)."""
        return [r for r in self.requests if "/upload:" in r.path]

    def fail_next(self, code: int, title: str = "error", status: int = 400,
                  headers: dict[str, str] | None = None) -> None:
        self.failures.append((status, {"error": {"message": f"(#{code}) {title}.",
                                                 "type": "OAuthException", "code": code,
                                                 "error_data": {"details": title},
                                                 "fbtrace_id": "trace"}}, headers or {}))


graph_state_key = web.AppKey("graph_state", GraphState)


def graph_app(token: str) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    state = GraphState()
    app[graph_state_key] = state

    def check_auth(request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"error": {"message": "Invalid OAuth access token",
                                                "code": 190, "type": "OAuthException"}},
                                     status=401)
        return None

    async def received(request: web.Request) -> tuple[Any, web.Response | None]:
        """A JSON call recorded, then refused as Graph would (bad token, or the
        next scripted failure); the refusal is None when it goes through."""
        body = await request.json()
        state.requests.append(GraphRecord(request.path, dict(request.headers), json=body))
        if (denied := check_auth(request)) is not None:
            return body, denied
        if state.failures:
            status, payload, headers = state.failures.popleft()
            return body, web.json_response(payload, status=status, headers=headers)
        return body, None

    async def messages(request: web.Request) -> web.Response:
        body, refusal = await received(request)
        if refusal is not None:
            return refusal
        wamid = f"wamid.TEST{next(state.ids)}"
        refused = state.window.refusal(body)
        if refused is not None and refused[0] == 131047 and state.window.asynchronous:
            state.window.refused.append(wamid)  # accepted now, failed by a later status
        elif refused is not None:
            code, title = refused
            return web.json_response({"error": {"message": f"(#{code}) {title}", "code": code,
                                                "type": "OAuthException"}}, status=400)
        return web.json_response({"messaging_product": "whatsapp",
                                  "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
                                  "messages": [{"id": wamid}]})

    async def media(request: web.Request) -> web.Response:
        form: dict[str, Any] = {}
        reader = await request.multipart()
        async for part in reader:
            data = await part.read()  # type: ignore[union-attr]
            form[part.name or ""] = {"filename": part.filename, "bytes": bytes(data),
                                     "content_type": part.headers.get("Content-Type")}
        state.requests.append(GraphRecord(request.path, dict(request.headers), form=form))
        if (denied := check_auth(request)) is not None:
            return denied
        answer = {"id": f"media.{next(state.ids)}"}
        state.requests[-1].answer = answer
        return web.json_response(answer)

    # The resumable upload API (a profile picture): a session on the app, then
    # the bytes with `Authorization: OAuth <token>` and `file_offset`, answered
    # with the handle that whatsapp_business_profile takes.
    async def upload_session(request: web.Request) -> web.Response:
        state.requests.append(GraphRecord(request.path, dict(request.headers),
                                          json=dict(request.query)))
        if (denied := check_auth(request)) is not None:
            return denied
        if not request.query.get("file_length", "").isdigit():
            return web.json_response({"error": {"message": "(#100) file_length is required",
                                                "code": 100}}, status=400)
        return web.json_response({"id": f"upload:SESSION{next(state.ids)}"})

    async def upload_bytes(request: web.Request) -> web.Response:
        data = await request.read()
        state.requests.append(GraphRecord(request.path, dict(request.headers),
                                          form={"bytes": data}))
        if request.headers.get("Authorization") != f"OAuth {token}":
            return web.json_response({"error": {"message": "OAuth token required",
                                                "code": 190}}, status=401)
        if request.headers.get("file_offset") != "0":
            return web.json_response({"error": {"message": "file_offset", "code": 100}},
                                     status=400)
        return web.json_response({"h": f"4::HANDLE{request.match_info['sid']}"})

    async def business_profile(request: web.Request) -> web.Response:
        _, refusal = await received(request)
        return refusal or web.json_response({"success": True})

    async def media_lookup(request: web.Request) -> web.Response:
        state.requests.append(GraphRecord(request.path, dict(request.headers)))
        if (denied := check_auth(request)) is not None:
            return denied
        media_id = request.match_info["media_id"]
        if media_id not in state.files:
            return web.json_response({"error": {"message": "(#100) Invalid media id",
                                                "code": 100}}, status=400)
        content, mime = state.files[media_id]
        base = state.download_base or str(request.url.origin())
        return web.json_response({"messaging_product": "whatsapp", "id": media_id,
                                  "url": f"{base}/download/{media_id}?ext=1", "mime_type": mime,
                                  "sha256": hashlib.sha256(content).hexdigest(),
                                  "file_size": len(content)})

    async def media_download(request: web.Request) -> web.Response:
        state.requests.append(GraphRecord(request.path, dict(request.headers)))
        if (denied := check_auth(request)) is not None:
            return denied
        if state.hold_downloads is not None:
            await state.hold_downloads.wait()
        found = state.files.get(request.match_info["media_id"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    app.router.add_get("/download/{media_id}", media_download)
    app.router.add_get("/{version}/{media_id}", media_lookup)
    app.router.add_post("/{version}/upload:{sid}", upload_bytes)
    app.router.add_post("/{version}/{app_id}/uploads", upload_session)
    app.router.add_post("/{version}/{pnid}/whatsapp_business_profile", business_profile)
    app.router.add_post("/{version}/{pnid}/messages", messages)
    app.router.add_post("/{version}/{pnid}/media", media)
    return app
