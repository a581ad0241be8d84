"""What Twilio's WhatsApp senders carry, its status words and its retryable errors."""

from __future__ import annotations

from bot.kinds import Status
from bot.providers.base import Capabilities

# 20429: too many requests; 20500/20503: Twilio's own trouble. Others are permanent.
TRANSIENT_CODES = frozenset({20429, 20500, 20503})

CAPS = Capabilities(
    # WhatsApp through Twilio takes these images (not GIF or WebP).
    image_types=frozenset({"image/jpeg", "image/png"}),
    image_refusal="Twilio's WhatsApp API, which takes JPEG or PNG images",
    groups=False,  # Twilio's WhatsApp senders cannot write to groups
    # Outside the window, Content templates (ContentSid); 63016 is Twilio's
    # "outside the allowed window", sent again once as the template.
    templates=True, service_window=True, window_codes=frozenset({63016}),
    statuses={"queued": None, "accepted": None, "scheduled": None, "sending": None,
              "canceled": None, "receiving": None, "received": None,
              "sent": Status.SENT, "delivered": Status.DELIVERED, "read": Status.READ,
              "failed": Status.FAILED, "undelivered": Status.FAILED})
