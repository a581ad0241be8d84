"""WAHA (devlikeapro/waha): a normal WhatsApp account linked by QR code, driven
over WAHA's HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.providers.base import Provider
from bot.providers.waha.caps import CAPS, PROFILE_FIELDS
from bot.providers.waha.config import WahaConfigPart
from bot.providers.waha.outbound import WahaSender

if TYPE_CHECKING:
    from bot.workers.media_fetch import MediaFetch


def inbound_app() -> web.Application:
    from bot.providers.waha.inbound import inbound_app  # the HTTP side: with an app only

    return inbound_app()


def media() -> MediaFetch:
    from bot.providers.waha.fetch_media import MEDIA  # the HTTP side: with an app only

    return MEDIA


PROVIDER = Provider(name="waha", media=media, caps=CAPS, config=WahaConfigPart(),
                    make_sender=WahaSender.from_context, inbound=inbound_app,
                    profile_fields=PROFILE_FIELDS, make_profiler=WahaSender.from_context)
