"""The built-in sandbox provider: no network. Inbound messages are injected
with `POST /sandbox/inbound`, outbound ones listed by `GET /sandbox/outbox`."""

from aiohttp import web

from bot.config.types import PROFILE_FIELDS
from bot.providers.base import Provider
from bot.providers.sandbox.caps import CAPS
from bot.providers.sandbox.config import SandboxConfigPart
from bot.providers.sandbox.outbound import SandboxProfiler, SandboxSender


def routes() -> web.RouteTableDef:
    from bot.providers.sandbox.inbound import routes  # the HTTP side: with an app only

    return routes


PROVIDER = Provider(name="sandbox", caps=CAPS, config=SandboxConfigPart(),
                    make_sender=SandboxSender, routes=routes,
                    profile_fields=PROFILE_FIELDS, make_profiler=SandboxProfiler.from_context)
