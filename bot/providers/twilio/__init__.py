"""Twilio Programmable Messaging with a WhatsApp sender."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from bot.providers.base import Provider
from bot.providers.twilio.caps import CAPS
from bot.providers.twilio.config import TwilioConfigPart
from bot.providers.twilio.outbound import TwilioSender

if TYPE_CHECKING:
    from bot.workers.media_fetch import MediaFetch


def inbound_app() -> web.Application:
    from bot.providers.twilio.inbound import inbound_app  # the HTTP side: with an app only

    return inbound_app()


def serve_media() -> Callable[[web.Request], Awaitable[web.Response]]:
    from bot.providers.twilio.inbound import serve_media

    return serve_media


def media() -> MediaFetch:
    from bot.providers.twilio.fetch_media import MEDIA  # the HTTP side: with an app only

    return MEDIA


PROVIDER = Provider(name="twilio", media=media, caps=CAPS, config=TwilioConfigPart(),
                    make_sender=TwilioSender, inbound=inbound_app, serve_media=serve_media)
