"""A local WAHA-shaped server: a real aiohttp app answering like WAHA's HTTP
API (send, groups, sessions, profile), recording every request, with
scripted failures; and the signing of WAHA's webhooks."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

WAHA_API_KEY = "test-waha-api-key"
WAHA_HMAC_KEY = "test-waha-hmac-key"


@dataclass
class WahaRecord:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None


@dataclass
class WahaState:
    requests: list[WahaRecord] = field(default_factory=list)
    # Scripted answers for the send endpoints: (status, body); empty = success.
    failures: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    sessions: dict[str, str] = field(default_factory=lambda: {"default": "WORKING"})
    groups: dict[str, str] = field(default_factory=dict)  # group id -> subject
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    # Files users sent, by name under /api/files/: (bytes, type), with the API key.
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    @property
    def sends(self) -> list[WahaRecord]:
        return [r for r in self.requests if r.path.startswith("/api/send")]

    def of(self, path: str) -> list[WahaRecord]:
        return [r for r in self.requests if r.path == path]


waha_state_key = web.AppKey("waha_state", WahaState)


def waha_app(api_key: str = WAHA_API_KEY) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    state = app[waha_state_key] = WahaState()

    async def record(request: web.Request) -> web.Response | None:
        body = await request.json() if request.can_read_body else None
        state.requests.append(WahaRecord(request.method, request.path, dict(request.headers),
                                         json=body))
        if request.headers.get("X-Api-Key") != api_key:
            return web.json_response({"message": "Unauthorized", "statusCode": 401},
                                     status=401)
        return None

    async def send(request: web.Request) -> web.Response:
        if (denied := await record(request)) is not None:
            return denied
        if state.failures:
            status, payload = state.failures.popleft()
            return web.json_response(payload, status=status)
        body = state.requests[-1].json
        if state.sessions.get(body.get("session")) != "WORKING":
            return web.json_response({"statusCode": 422, "message": "Session status is not as "
                                      "expected"}, status=422)
        return web.json_response({"id": f"true_{body['chatId']}_WAHA{next(state.ids)}"},
                                 status=201)

    async def group(request: web.Request) -> web.Response:
        if (denied := await record(request)) is not None:
            return denied
        subject = state.groups.get(request.match_info["group"])
        if subject is None:
            return web.json_response({"message": "not found"}, status=404)
        return web.json_response({"id": request.match_info["group"], "subject": subject})

    async def session(request: web.Request) -> web.Response:
        if (denied := await record(request)) is not None:
            return denied
        name = request.match_info["session"]
        if name not in state.sessions:
            return web.json_response({"message": "Session not found"}, status=404)
        return web.json_response({"name": name, "status": state.sessions[name]})

    async def profile(request: web.Request) -> web.Response:
        if (denied := await record(request)) is not None:
            return denied
        return web.json_response({"success": True})

    for endpoint in ("sendText", "sendImage", "sendFile"):
        app.router.add_post(f"/api/{endpoint}", send)
    app.router.add_get("/api/{session}/groups/{group}", group)
    async def file(request: web.Request) -> web.Response:
        state.requests.append(WahaRecord(request.method, request.path, dict(request.headers)))
        if request.headers.get("X-Api-Key") != api_key:
            return web.json_response({"message": "Unauthorized", "statusCode": 401},
                                     status=401)
        found = state.files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    app.router.add_get("/api/files/{session}/{name}", file)
    app.router.add_get("/api/sessions/{session}", session)
    app.router.add_put("/api/{session}/profile/{field}", profile)
    return app


def waha_sign(body: bytes, key: str = WAHA_HMAC_KEY) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


async def post_waha(client: TestClient, payload: Any, *, key: str = WAHA_HMAC_KEY,
                    headers: dict[str, str] | None = None) -> Any:
    body = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    return await client.post("/webhooks/waha", data=body, headers={
        "Content-Type": "application/json", "X-Webhook-Hmac": waha_sign(body, key),
        "X-Webhook-Hmac-Algorithm": "sha512", **(headers or {})})


def waha_message(text: str, sender: str = "34600000001@c.us", msg_id: str | None = None,
                 session: str = "default", event: str = "message", **extra: Any
                 ) -> dict[str, Any]:
    """A WAHA `message` webhook with one text message."""
    msg_id = msg_id or f"false_{sender}_{next(_msg_ids)}"
    return {"id": f"evt_{msg_id}", "event": event, "session": session,
            "me": {"id": "15550003333@c.us", "pushName": "Gateway"},
            "payload": {"id": msg_id, "timestamp": 1764590000, "from": sender,
                        "fromMe": False, "to": "15550003333@c.us", "body": text,
                        "hasMedia": False, "_data": {"notifyName": "Ana"}, **extra}}


_msg_ids = itertools.count(1)


def waha_config(base_url: str, *, instance: int = 3, session: str = "default",
                extra_instance: str = "") -> str:
    """The [waha] section and one waha instance (TOML, appended to base_config)."""
    return (f'\n[waha]\nbase_url = "{base_url}"\napi_key = "{WAHA_API_KEY}"\n'
            f'hmac_key = "{WAHA_HMAC_KEY}"\ntimeout = 5\n'
            f'\n[[instances]]\nid = {instance}\nnumber = "+1555000{instance}333"\n'
            f'provider = "waha"\nsession = "{session}"\n{extra_instance}')
