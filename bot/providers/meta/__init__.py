"""The WhatsApp Business Cloud API (Meta)."""

from bot.providers.base import Provider
from bot.providers.meta.caps import CAPS
from bot.providers.meta.config import MetaConfigPart
from bot.providers.meta.inbound import inbound_app
from bot.providers.meta.outbound import MetaSender
from bot.providers.meta.profile import FIELDS, MetaProfiler

PROVIDER = Provider(name="meta", caps=CAPS, config=MetaConfigPart(),
                    make_sender=MetaSender, inbound=inbound_app,
                    profile_fields=FIELDS, make_profiler=MetaProfiler.from_context)
