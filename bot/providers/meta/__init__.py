"""The WhatsApp Business Cloud API (Meta)."""

from aiohttp import web

from bot.providers.base import Provider
from bot.providers.meta.caps import CAPS
from bot.providers.meta.config import MetaConfigPart
from bot.providers.meta.outbound import MetaSender
from bot.providers.meta.profile import FIELDS, MetaProfiler


def inbound_app() -> web.Application:
    from bot.providers.meta.inbound import inbound_app  # the HTTP side: with an app only

    return inbound_app()


PROVIDER = Provider(name="meta", caps=CAPS, config=MetaConfigPart(),
                    make_sender=MetaSender, inbound=inbound_app,
                    profile_fields=FIELDS, make_profiler=MetaProfiler.from_context)
