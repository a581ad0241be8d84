"""Outbound through the WhatsApp Business Cloud API (Meta): Graph API calls
with the bearer token; media are uploaded first and sent by id."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.config.types import InstanceConfig
from bot.providers.base import SenderContext, SendResult, TransportMessage
from bot.providers.meta.caps import TRANSIENT_CODES, reason
from bot.providers.meta.config import MetaConfig
from bot.templates import TemplateUse
from bot.userids import is_user_id

_CODE_PREFIX = re.compile(r"^\(#?\d+\)\s*")


class MetaSender:
    """Outbound through the Graph API, on the app's shared client session."""

    def __init__(self, ctx: SenderContext) -> None:
        self._config: Callable[[], MetaConfig | None] = ctx.section  # read per call: a
        self.session = ctx.session  # reload's new token applies at once

    @property
    def config(self) -> MetaConfig:
        config = self._config()
        if config is None:
            raise RuntimeError("the [meta] section was removed from the config")
        return config

    def _url(self, instance: InstanceConfig, edge: str) -> str:
        c = self.config
        return f"{c.graph_base_url}/{c.api_version}/{instance.options['phone_number_id']}/{edge}"

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.access_token}"}

    async def send(self, instance: InstanceConfig, message: TransportMessage) -> SendResult:
        try:
            body: dict[str, Any] = {"messaging_product": "whatsapp"}
            if message.group_id:
                body.update(recipient_type="group", to=message.group_id)
            elif is_user_id(message.to):  # a user known only by Meta's business-scoped id
                body.update(recipient_type="individual", recipient=message.to)
            else:
                body.update(recipient_type="individual", to=(message.to or "").lstrip("+"))
            if message.template is not None:
                template = await self._template(instance, message, message.template)
                if isinstance(template, SendResult):
                    return template
                body.update(type="template", template=template)
            elif message.kind in ("text", "url"):
                body.update(type="text", text={"body": message.text or "",
                                               "preview_url": message.kind == "url"})
            elif message.kind in ("image", "document"):
                if message.media is None:
                    return SendResult(error_code=None, error_title="media is gone")
                uploaded = await self._upload(instance, message, message.media)
                if not uploaded.ok:
                    return uploaded
                part: dict[str, Any] = {"id": uploaded.provider_message_id}
                if message.caption:
                    part["caption"] = message.caption
                if message.kind == "document" and message.filename:
                    part["filename"] = message.filename
                body.update(type=message.kind, **{message.kind: part})
            else:
                return SendResult(error_title=f"unsupported message type {message.kind}")
            result = await self._post_json(self._url(instance, "messages"), body,
                                           want="messages")
            if result.ok and message.template is None and message.kind in ("image", "document"):
                # Kept until the first status: should it be 131047 (outside the
                # window), the media go again in the template's header.
                result = dataclasses.replace(result, keep_media=True)
            return result
        except (TimeoutError, aiohttp.ClientError) as exc:
            return SendResult(error_title=f"network error: {type(exc).__name__}", transient=True)

    async def _template(self, instance: InstanceConfig, message: TransportMessage,
                        use: TemplateUse) -> dict[str, Any] | SendResult:
        """Graph's `template` object: name, language, and the header and body
        components (the header's media uploaded first)."""
        components: list[dict[str, Any]] = []
        if use.header in ("image", "document"):
            if message.media is None:
                return SendResult(error_title="media is gone")
            uploaded = await self._upload(instance, message, message.media)
            if not uploaded.ok:
                return uploaded
            media: dict[str, Any] = {"id": uploaded.provider_message_id}
            if use.header == "document" and message.filename:
                media["filename"] = message.filename
            components.append({"type": "header", "parameters": [
                {"type": use.header, use.header: media}]})
        if isinstance(use.parameters, dict):
            params = [{"type": "text", "parameter_name": name, "text": value}
                      for name, value in use.parameters.items()]
        else:
            params = [{"type": "text", "text": value} for value in use.parameters]
        if params:
            components.append({"type": "body", "parameters": params})
        template: dict[str, Any] = {"name": use.name,
                                    "language": {"code": use.language or "en_US"}}
        if components:
            template["components"] = components
        return template

    async def _upload(self, instance: InstanceConfig, message: TransportMessage,
                      media: bytes) -> SendResult:
        # Unquoted: aiohttp would percent-encode the file name ("Invoice%207.pdf"),
        # and Graph keeps it as given. Names are cleaned (no quotes, no folders).
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", message.mime or "application/octet-stream")
        form.add_field("file", media, filename=message.filename or message.kind,
                       content_type=message.mime or "application/octet-stream")
        async with self.session.post(self._url(instance, "media"), data=form, headers=self._auth,
                                     timeout=aiohttp.ClientTimeout(total=self.config.timeout)
                                     ) as resp:
            return await self._result(resp, want="id")

    async def _post_json(self, url: str, body: dict[str, Any], want: str) -> SendResult:
        async with self.session.post(url, json=body, headers=self._auth,
                                     timeout=aiohttp.ClientTimeout(total=self.config.timeout)
                                     ) as resp:
            return await self._result(resp, want=want)

    @staticmethod
    async def _result(resp: aiohttp.ClientResponse, want: str) -> SendResult:
        try:
            data = await resp.json(content_type=None)
        except ValueError:
            data = None
        if resp.status < 300 and isinstance(data, dict):
            if want == "messages":
                messages = data.get("messages")
                if isinstance(messages, list) and messages and messages[0].get("id"):
                    return SendResult(provider_message_id=str(messages[0]["id"]))
            elif data.get("id"):
                return SendResult(provider_message_id=str(data["id"]))
            return SendResult(error_title="unexpected Graph API answer", transient=True)
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), int) else None
        # Graph messages read "(#131026) Message undeliverable."; keep the title part.
        title = error.get("error_user_title") or error.get("title") or _CODE_PREFIX.sub(
            "", str(error.get("message") or "")).rstrip(".") or f"HTTP {resp.status}"
        retry_after = None
        if "Retry-After" in resp.headers:
            try:
                retry_after = float(resp.headers["Retry-After"])
            except ValueError:
                retry_after = None
        transient = resp.status >= 500 or resp.status == 429 or code in TRANSIENT_CODES
        return SendResult(error_code=code, error_title=str(reason(code, str(title)))[:300],
                          transient=transient,
                          retry_after=retry_after)
