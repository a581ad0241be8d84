"""The number's business profile on the WhatsApp Cloud API: the picture is
uploaded first through Graph's resumable upload API (an upload session on the
app, then the bytes, which answer a handle), then everything is set with
`POST /{phone_number_id}/whatsapp_business_profile`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from bot.config.types import PROFILE_FIELDS, InstanceConfig, Profile
from bot.providers.base import ProfileResult, SenderContext
from bot.providers.meta.config import MetaConfig

FIELDS = PROFILE_FIELDS  # the Cloud API sets every field of the business profile


class MetaProfiler:
    def __init__(self, config: Callable[[], MetaConfig | None],
                 session: aiohttp.ClientSession) -> None:
        self._config = config
        self.session = session

    @classmethod
    def from_context(cls, ctx: SenderContext) -> MetaProfiler:
        return cls(ctx.section, ctx.session)

    async def apply_profile(self, instance: InstanceConfig, profile: Profile) -> ProfileResult:
        config = self._config()
        if config is None:
            return ProfileResult(error="the [meta] section is missing")
        body: dict[str, Any] = {"messaging_product": "whatsapp"}
        for name in ("about", "description", "email"):
            if getattr(profile, name) is not None:
                body[name] = getattr(profile, name)
        if profile.websites:
            body["websites"] = list(profile.websites)
        limit = aiohttp.ClientTimeout(total=config.timeout)
        base = f"{config.graph_base_url}/{config.api_version}"
        auth = {"Authorization": f"Bearer {config.access_token}"}
        try:
            if profile.picture is not None:
                if not config.app_id:
                    return ProfileResult(error="picture: the resumable upload needs "
                                         "[meta] app_id")
                ok, data = await self._call("POST", f"{base}/{config.app_id}/uploads", auth,
                                            limit, params={
                                                "file_name": "profile",
                                                "file_length": str(len(profile.picture)),
                                                "file_type": profile.picture_mime or "image/jpeg"})
                if not ok or not isinstance(data.get("id"), str):
                    return ProfileResult(error=f"picture upload session: {_why(data)}")
                ok, data = await self._call(
                    "POST", f"{base}/{data['id']}",
                    {"Authorization": f"OAuth {config.access_token}", "file_offset": "0"},
                    limit, data=profile.picture)
                if not ok or not isinstance(data.get("h"), str):
                    return ProfileResult(error=f"picture upload: {_why(data)}")
                body["profile_picture_handle"] = data["h"]
            ok, data = await self._call(
                "POST", f"{base}/{instance.options['phone_number_id']}/whatsapp_business_profile",
                auth, limit, json=body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return ProfileResult(error=f"network error: {type(exc).__name__}")
        if not ok:
            return ProfileResult(error=f"whatsapp_business_profile: {_why(data)}")
        return ProfileResult(applied=profile.fields())

    async def _call(self, method: str, url: str, headers: dict[str, str],
                    limit: aiohttp.ClientTimeout, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
        async with self.session.request(method, url, headers=headers, timeout=limit,
                                        **kwargs) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = None
            data = data if isinstance(data, dict) else {"status": resp.status}
            return resp.status < 300, data


def _why(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')} {str(error.get('message'))[:200]}"
    return f"unexpected answer {str(data)[:200]}"
