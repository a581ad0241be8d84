"""What the WhatsApp Cloud API carries, and its status words."""

from __future__ import annotations

from bot.providers.base import Capabilities

# Meta's throttling and "try again" codes; everything else 4xx is permanent.
TRANSIENT_CODES = frozenset({4, 80007, 130429, 131000, 131016, 131056, 133004})

CAPS = Capabilities(
    # The Cloud API takes only these as image messages (WebP is for stickers).
    image_types=frozenset({"image/jpeg", "image/png"}),
    image_refusal="the WhatsApp Cloud API, which takes JPEG or PNG images",
    templates=True, service_window=True,
    statuses={"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"})
