"""WAHA (devlikeapro/waha): a normal WhatsApp account linked by QR code, driven
over WAHA's HTTP API."""

from bot.providers.base import Provider
from bot.providers.waha.caps import CAPS, PROFILE_FIELDS
from bot.providers.waha.config import WahaConfigPart
from bot.providers.waha.inbound import inbound_app
from bot.providers.waha.outbound import WahaSender

PROVIDER = Provider(name="waha", caps=CAPS, config=WahaConfigPart(),
                    make_sender=WahaSender.from_context, inbound=inbound_app,
                    profile_fields=PROFILE_FIELDS, make_profiler=WahaSender.from_context)
