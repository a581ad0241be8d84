"""What a WAHA session carries, and its acknowledgement words."""

from __future__ import annotations

from bot.kinds import Status
from bot.providers.base import Capabilities

CAPS = Capabilities(
    # WhatsApp shows JPEG and PNG as photos; other types would go as stickers or files.
    image_types=frozenset({"image/jpeg", "image/png"}),
    image_refusal="WAHA (a WhatsApp account), which sends JPEG or PNG images",
    templates=False, service_window=False,  # a normal account: no 24-hour window
    # `message.ack` events name the step in `ackName`.
    statuses={"PENDING": None, "SERVER": Status.SENT, "DEVICE": Status.DELIVERED,
              "READ": Status.READ, "PLAYED": Status.PLAYED, "ERROR": Status.FAILED})

# A normal account has a picture and an "about" line; the business fields
# (description, email, websites) exist only on WhatsApp Business accounts.
PROFILE_FIELDS = frozenset({"picture", "about"})

# Session states (GET /api/sessions/{session}: STOPPED, STARTING, SCAN_QR_CODE,
# WORKING, FAILED, and those WAHA adds, PASSKEY_REQUIRED, ...): only WORKING sends.
WORKING = "WORKING"
