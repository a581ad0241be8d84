"""Outbound through WAHA's HTTP API, and what gateway code asks WAHA besides
sending: group names, the session's state, the profile."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.config.types import InstanceConfig
from bot.providers.base import (
    Profile,
    ProfileResult,
    SenderContext,
    SendResult,
    TransportMessage,
)
from bot.providers.waha.caps import WORKING
from bot.providers.waha.config import WahaConfig

log = logging.getLogger("wagate.waha")

GROUP_NAME_TTL = 600.0  # group subjects change rarely; a renamed group is seen within this
GROUP_CACHE_MAX = 10_000
STATUS_TTL = 30.0  # a session state older than this is asked again on /readyz
READINESS_TIMEOUT = 2.0
GROUP_TIMEOUT = 5.0
_ENDPOINTS = {"text": "sendText", "url": "sendText", "image": "sendImage",
              "document": "sendFile"}


def chat_id(message: TransportMessage) -> str:
    """WAHA's chat id: the group's own id, `<digits>@c.us` for a number, and a
    user id (`...@lid`) as it came."""
    if message.group_id:
        return message.group_id
    to = message.to or ""
    return f"{to.lstrip('+')}@c.us" if to.startswith("+") else to


def message_id(data: Any) -> str | None:
    """The id of a sent message: a string (most engines), `id._serialized`
    (WEBJS) or `key.id` (NOWEB)."""
    if not isinstance(data, dict):
        return None
    value = data.get("id")
    if isinstance(value, dict):
        value = value.get("_serialized")
    if not value and isinstance(data.get("key"), dict):
        value = data["key"].get("id")
    return value if isinstance(value, str) and value else None


class WahaSender:
    """Calls WAHA on the app's shared client session; keeps each session's
    last known state and a small cache of group names."""

    def __init__(self, config: Callable[[], WahaConfig | None],
                 session: aiohttp.ClientSession) -> None:
        self._config = config  # read per call, so a reload's new key applies at once
        self.session = session
        self._states: dict[str, tuple[str, float]] = {}  # session -> (state, when learned)
        self._groups: dict[tuple[str, str], tuple[str | None, float]] = {}

    @classmethod
    def from_context(cls, ctx: SenderContext) -> WahaSender:
        return cls(ctx.section, ctx.session)

    @property
    def config(self) -> WahaConfig:
        config = self._config()
        if config is None:
            raise RuntimeError("the [waha] section was removed from the config")
        return config

    def _headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.config.api_key}

    def _timeout(self, seconds: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=seconds or self.config.timeout)

    # ------------------------------------------------------------ sending

    async def send(self, instance: InstanceConfig, message: TransportMessage) -> SendResult:
        endpoint = _ENDPOINTS.get(message.kind)
        if endpoint is None:
            return SendResult(error_title=f"unsupported message type {message.kind}")
        body: dict[str, Any] = {"session": instance.options["session"],
                                "chatId": chat_id(message)}
        if endpoint == "sendText":
            body["text"] = message.text or ""
        else:
            if message.media is None:
                return SendResult(error_title="media is gone")
            body["file"] = {"mimetype": message.mime or "application/octet-stream",
                            "filename": message.filename or message.kind,
                            "data": base64.b64encode(message.media).decode()}
            if message.caption:
                body["caption"] = message.caption
        try:
            async with self.session.post(f"{self.config.base_url}/api/{endpoint}", json=body,
                                         headers=self._headers(),
                                         timeout=self._timeout()) as resp:
                return await self._result(resp, instance)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return SendResult(error_title=f"network error: {type(exc).__name__}", transient=True)

    async def _result(self, resp: aiohttp.ClientResponse, instance: InstanceConfig) -> SendResult:
        try:
            data = await resp.json(content_type=None)
        except ValueError:
            data = None
        if resp.status < 300:
            sent = message_id(data)
            if sent:
                return SendResult(provider_message_id=sent)
            return SendResult(error_title="unexpected WAHA answer (no message id)",
                              transient=True)
        error = data if isinstance(data, dict) else {}
        title = error.get("message") or error.get("error") or f"HTTP {resp.status}"
        if isinstance(title, list):  # NestJS validation errors come as a list
            title = "; ".join(str(t) for t in title)
        # 422: the session is not WORKING (not linked, restarting). The message
        # waits with backoff rather than failing while someone scans the QR code.
        transient = resp.status >= 500 or resp.status in (408, 422, 429)
        if resp.status == 422:
            self._states.pop(instance.options["session"], None)  # ask again on /readyz
        return SendResult(error_code=resp.status, error_title=str(title)[:300],
                          transient=transient)

    # ------------------------------------------------------------ groups

    async def group_name(self, instance: InstanceConfig, group_id: str) -> str | None:
        """The group's subject as WAHA knows it, cached; None when WAHA cannot say."""
        session = instance.options["session"]
        key = (session, group_id)
        cached = self._groups.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[1] < GROUP_NAME_TTL:
            return cached[0]
        name = None
        try:
            # The id came in a signed webhook; quoted all the same, as it goes in a path.
            path = f"/api/{session}/groups/{quote(group_id, safe='@')}"
            async with self.session.get(f"{self.config.base_url}{path}",
                                        headers=self._headers(),
                                        timeout=self._timeout(GROUP_TIMEOUT)) as resp:
                data = await resp.json(content_type=None) if resp.status == 200 else None
            name = _group_subject(data)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("waha: group name of %s not read: %s", group_id, type(exc).__name__)
            return cached[0] if cached else None
        if len(self._groups) >= GROUP_CACHE_MAX:
            self._groups.clear()
        self._groups[key] = (name, now)
        return name

    # ------------------------------------------------------------ session state

    def session_state(self, session: str, state: str) -> None:
        """A `session.status` event: the state as WAHA just reported it."""
        self._states[session] = (state, time.monotonic())

    async def readiness(self, instances: Sequence[InstanceConfig]) -> list[str]:
        problems = []
        for inst in instances:
            session = inst.options["session"]
            known = self._states.get(session)
            if known is None or time.monotonic() - known[1] > STATUS_TTL:
                state = await self._ask_state(session)
                if state.startswith("unreachable"):
                    problems.append(f"instance {inst.id} (waha session {session!r}): WAHA "
                                    f"{state}")
                    continue
                self.session_state(session, state)
            else:
                state = known[0]
            if state != WORKING:
                problems.append(f"instance {inst.id} (waha session {session!r}): the WhatsApp "
                                f"account is not connected ({state}){_HINTS.get(state, '')}")
        return problems

    async def _ask_state(self, session: str) -> str:
        try:
            async with self.session.get(f"{self.config.base_url}/api/sessions/{session}",
                                        headers=self._headers(),
                                        timeout=self._timeout(READINESS_TIMEOUT)) as resp:
                if resp.status == 404:
                    return "NOT_FOUND"
                data = await resp.json(content_type=None)
                if resp.status >= 300:
                    return f"unreachable (HTTP {resp.status})"
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            return f"unreachable ({type(exc).__name__})"
        state = data.get("status") if isinstance(data, dict) else None
        return state if isinstance(state, str) and state else "UNKNOWN"

    # ------------------------------------------------------------ profile

    async def apply_profile(self, instance: InstanceConfig, profile: Profile) -> ProfileResult:
        session = instance.options["session"]
        applied: set[str] = set()
        calls: list[tuple[str, str, dict[str, Any]]] = []
        if profile.about is not None:
            calls.append(("about", "status", {"status": profile.about}))
        if profile.picture is not None:
            calls.append(("picture", "picture", {"file": {
                "mimetype": profile.picture_mime or "image/jpeg", "filename": "profile",
                "data": base64.b64encode(profile.picture).decode()}}))
        for name, edge, body in calls:
            try:
                async with self.session.put(f"{self.config.base_url}/api/{session}/profile/{edge}",
                                            json=body, headers=self._headers(),
                                            timeout=self._timeout()) as resp:
                    if resp.status >= 300:
                        text = (await resp.text())[:200]
                        return ProfileResult(applied=frozenset(applied),
                                             error=f"{name}: HTTP {resp.status} {text}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                return ProfileResult(applied=frozenset(applied),
                                     error=f"{name}: network error: {type(exc).__name__}")
            applied.add(name)
        return ProfileResult(applied=frozenset(applied))


_HINTS = {"SCAN_QR_CODE": ": scan the QR code in WAHA to link the number",
          "FAILED": ": restart the session in WAHA", "STOPPED": ": start the session in WAHA",
          "NOT_FOUND": ": WAHA has no such session"}


def _group_subject(data: Any) -> str | None:
    """`subject` (NOWEB, GOWS), `name` or `groupMetadata.subject` (WEBJS)."""
    if not isinstance(data, dict):
        return None
    meta = data.get("groupMetadata")
    for value in (data.get("subject"), data.get("name"),
                  meta.get("subject") if isinstance(meta, dict) else None):
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return None
