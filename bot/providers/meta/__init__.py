"""The WhatsApp Business Cloud API (Meta)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.providers.base import Provider
from bot.providers.meta.caps import CAPS
from bot.providers.meta.config import MetaConfigPart
from bot.providers.meta.outbound import MetaSender
from bot.providers.meta.profile import FIELDS, MetaProfiler

if TYPE_CHECKING:
    from bot.workers.media_fetch import MediaFetch


def inbound_app() -> web.Application:
    from bot.providers.meta.inbound import inbound_app  # the HTTP side: with an app only

    return inbound_app()


def media() -> MediaFetch:
    from bot.providers.meta.fetch_media import MEDIA  # the HTTP side: with an app only

    return MEDIA


PROVIDER = Provider(name="meta", media=media, caps=CAPS, config=MetaConfigPart(),
                    make_sender=MetaSender, inbound=inbound_app,
                    profile_fields=FIELDS, make_profiler=MetaProfiler.from_context)
