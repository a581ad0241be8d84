"""Outbound through Twilio's Messages API: `POST {api_base_url}/2010-04-01/
Accounts/{AccountSid}/Messages.json`, form-encoded, basic auth. Images and
documents go as a MediaUrl Twilio fetches from us (see media.py); statuses
come back to /webhooks/twilio through StatusCallback."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import aiohttp

from bot.config.types import InstanceConfig
from bot.providers.base import SenderContext, SendResult, TransportMessage
from bot.providers.twilio.caps import TRANSIENT_CODES
from bot.providers.twilio.config import TwilioConfig
from bot.providers.twilio.media import media_url


class TwilioSender:
    def __init__(self, ctx: SenderContext) -> None:
        self._config: Callable[[], TwilioConfig | None] = ctx.section  # read per call: a
        self.session = ctx.session  # reload's new token applies at once

    async def send(self, instance: InstanceConfig, message: TransportMessage) -> SendResult:
        config = self._config()
        if config is None:
            return SendResult(error_title="the [twilio] section was removed from the config")
        if message.to is None:
            return SendResult(error_title="Twilio's WhatsApp senders cannot write to groups")
        form = [("From", f"whatsapp:{instance.number}"), ("To", f"whatsapp:{message.to}"),
                ("StatusCallback", f"{config.public_url}/webhooks/twilio")]
        media = message.kind in ("image", "document")
        if message.template is not None:
            # A Content template: the template's name is its ContentSid, the
            # parameters its variables ({{1}} … or named).
            if message.template.header != "none":
                return SendResult(error_title="Twilio Content templates with a media header "
                                  "are not supported; configure a text template for Twilio")
            params = message.template.parameters
            variables = ({str(n): v for n, v in enumerate(params, start=1)}
                         if isinstance(params, list) else dict(params))
            form += [("ContentSid", message.template.name),
                     ("ContentVariables", json.dumps(variables, ensure_ascii=False))]
            media = False
        elif message.kind in ("text", "url"):
            form.append(("Body", message.text or ""))
        elif media:
            if message.media is None:
                return SendResult(error_title="media is gone")
            form.append(("MediaUrl", media_url(config, message.id, time.time())))
            if message.caption:
                form.append(("Body", message.caption))
        else:
            return SendResult(error_title=f"unsupported message type {message.kind}")
        url = f"{config.api_base_url}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        try:
            async with self.session.post(
                    url, data=form, headers={"Authorization": basic_auth(config)},
                    timeout=aiohttp.ClientTimeout(total=config.timeout)) as resp:
                result = await _result(resp)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return SendResult(error_title=f"network error: {type(exc).__name__}", transient=True)
        if result.ok and media:  # Twilio fetches them after this answer
            return SendResult(provider_message_id=result.provider_message_id, keep_media=True)
        return result


def basic_auth(config: TwilioConfig) -> str:
    # By hand: aiohttp.BasicAuth is deprecated, its replacement too new to require.
    pair = f"{config.account_sid}:{config.auth_token}".encode()
    return "Basic " + base64.b64encode(pair).decode()


async def _result(resp: aiohttp.ClientResponse) -> SendResult:
    try:
        data = await resp.json(content_type=None)
    except ValueError:
        data = None
    data = data if isinstance(data, dict) else {}
    if resp.status < 300:
        sid = data.get("sid")
        if isinstance(sid, str) and sid:
            return SendResult(provider_message_id=sid)
        return SendResult(error_title="unexpected Twilio answer", transient=True)
    code = data.get("code") if isinstance(data.get("code"), int) else None
    title = str(data.get("message") or f"HTTP {resp.status}")[:300]
    retry_after = None
    try:
        retry_after = float(resp.headers["Retry-After"]) if "Retry-After" in resp.headers else None
    except ValueError:
        retry_after = None
    transient = resp.status >= 500 or resp.status == 429 or code in TRANSIENT_CODES
    return SendResult(error_code=code, error_title=title, transient=transient,
                      retry_after=retry_after)
