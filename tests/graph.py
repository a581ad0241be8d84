"""A local Graph-API-shaped server: a real aiohttp app answering like Meta's
Cloud API, recording every request, with scripted failures."""

from __future__ import annotations

import itertools
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


@dataclass
class GraphState:
    requests: list[GraphRecord] = field(default_factory=list)
    # Scripted answers for /messages: (status, body, headers); empty = success.
    failures: deque[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=deque)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

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

    async def messages(request: web.Request) -> web.Response:
        body = await request.json()
        state.requests.append(GraphRecord(request.path, dict(request.headers), json=body))
        if (denied := check_auth(request)) is not None:
            return denied
        if state.failures:
            status, payload, headers = state.failures.popleft()
            return web.json_response(payload, status=status, headers=headers)
        wamid = f"wamid.TEST{next(state.ids)}"
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
        body = await request.json()
        state.requests.append(GraphRecord(request.path, dict(request.headers), json=body))
        if (denied := check_auth(request)) is not None:
            return denied
        if state.failures:
            status, payload, headers = state.failures.popleft()
            return web.json_response(payload, status=status, headers=headers)
        return web.json_response({"success": True})

    app.router.add_post("/{version}/upload:{sid}", upload_bytes)
    app.router.add_post("/{version}/{app_id}/uploads", upload_session)
    app.router.add_post("/{version}/{pnid}/whatsapp_business_profile", business_profile)
    app.router.add_post("/{version}/{pnid}/messages", messages)
    app.router.add_post("/{version}/{pnid}/media", media)
    return app
