"""A local Twilio-shaped server: the Messages API with basic auth, answering
201 with a sid, fetching each MediaUrl the way Twilio does, and failing on
request with Twilio's error shape."""

from __future__ import annotations

import asyncio
import base64
import itertools
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web


@dataclass
class TwilioMessage:
    form: dict[str, list[str]]
    sid: str
    media: list[tuple[int, str, bytes]] = field(default_factory=list)  # status, type, bytes

    def one(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class TwilioState:
    account_sid: str
    auth_token: str
    public_url: str  # the base wagate told Twilio; fetched at `fetch_base` instead
    api_url: str = ""  # where this server listens
    fetch_base: str = ""
    messages: list[TwilioMessage] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # answered with an error
    failures: list[tuple[int, int, str]] = field(default_factory=list)  # status, code, message
    fetches: list[asyncio.Task[None]] = field(default_factory=list)
    sids: itertools.count = field(default_factory=lambda: itertools.count(1))
    # Files users sent, by media sid: (bytes, type). Their MediaUrl is on the
    # API with basic auth, redirecting (307) to where the file is kept, as Twilio's does.
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    file_requests: list[tuple[str, str | None]] = field(default_factory=list)  # path, auth

    def media_url(self, media_sid: str, message_sid: str = "MM" + "0" * 32) -> str:
        return (f"{self.api_url}/2010-04-01/Accounts/{self.account_sid}/Messages/"
                f"{message_sid}/Media/{media_sid}")

    def fail_next(self, status: int, code: int, message: str) -> None:
        self.failures.append((status, code, message))


twilio_state_key = web.AppKey("twilio_state", TwilioState)


def twilio_app(state: TwilioState) -> web.Application:
    async def fetch(msg: TwilioMessage) -> None:
        for url in msg.form["MediaUrl"]:
            assert url.startswith(state.public_url + "/media/"), url
            async with aiohttp.ClientSession() as session, session.get(
                    state.fetch_base + url.removeprefix(state.public_url)) as resp:
                msg.media.append((resp.status, resp.content_type, await resp.read()))

    async def messages(request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(
            f"{state.account_sid}:{state.auth_token}".encode()).decode()
        if (request.match_info["sid"] != state.account_sid
                or request.headers.get("Authorization") != expected):
            return web.json_response({"code": 20003, "message": "Authenticate",
                                      "status": 401}, status=401)
        posted = await request.post()
        form: dict[str, list[str]] = {}
        for name, value in posted.items():
            form.setdefault(name, []).append(str(value))
        if state.failures:
            status, code, message = state.failures.pop(0)
            state.refused.append({"form": form, "code": code})
            return web.json_response({"code": code, "message": message, "status": status,
                                      "more_info": f"https://www.twilio.com/docs/errors/{code}"},
                                     status=status)
        msg = TwilioMessage(form=form, sid=f"SM{next(state.sids):032x}")
        state.messages.append(msg)
        if "MediaUrl" in form:  # like Twilio: fetched after the answer
            state.fetches.append(asyncio.create_task(fetch(msg)))
        return web.json_response({"sid": msg.sid, "status": "queued",
                                  "account_sid": state.account_sid}, status=201)

    async def media(request: web.Request) -> web.Response:
        state.file_requests.append((request.path, request.headers.get("Authorization")))
        expected = "Basic " + base64.b64encode(
            f"{state.account_sid}:{state.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"code": 20003, "message": "Authenticate",
                                      "status": 401}, status=401)
        if request.match_info["media"] not in state.files:
            return web.json_response({"code": 20404, "status": 404}, status=404)
        raise web.HTTPTemporaryRedirect(f"/kept/{request.match_info['media']}")

    async def kept(request: web.Request) -> web.Response:
        state.file_requests.append((request.path, request.headers.get("Authorization")))
        found = state.files.get(request.match_info["media"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    app = web.Application()
    app[twilio_state_key] = state
    app.router.add_get("/2010-04-01/Accounts/{sid}/Messages/{msg}/Media/{media}", media)
    app.router.add_get("/kept/{media}", kept)
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", messages)
    return app
