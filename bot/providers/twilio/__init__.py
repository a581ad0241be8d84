"""Twilio Programmable Messaging with a WhatsApp sender."""

from bot.providers.base import Provider
from bot.providers.twilio.caps import CAPS
from bot.providers.twilio.config import TwilioConfigPart
from bot.providers.twilio.inbound import inbound_app
from bot.providers.twilio.media import routes
from bot.providers.twilio.outbound import TwilioSender

PROVIDER = Provider(name="twilio", caps=CAPS, config=TwilioConfigPart(),
                    make_sender=TwilioSender, inbound=inbound_app, routes=routes)
