"""What the WhatsApp Cloud API carries, and its status words."""

from __future__ import annotations

from bot.kinds import Status
from bot.providers.base import Capabilities

# Meta's throttling and "try again" codes; everything else 4xx is permanent.
TRANSIENT_CODES = frozenset({4, 80007, 130429, 131000, 131016, 131056, 133004})

CAPS = Capabilities(
    # The Cloud API takes only these as image messages (WebP is for stickers).
    image_types=frozenset({"image/jpeg", "image/png"}),
    image_refusal="the WhatsApp Cloud API, which takes JPEG or PNG images",
    templates=True, service_window=True, window_codes=frozenset({131047}),
    statuses={"sent": Status.SENT, "delivered": Status.DELIVERED, "read": Status.READ,
              "played": Status.PLAYED, "failed": Status.FAILED})

# Codes whose own titles say little to a subscriber; a failure with one of
# them reads as this reason, Meta's title after it.
REASONS = {
    131047: "outside the 24-hour customer-service window: only a template can reach the user",
    132000: "template parameter count does not match the approved template",
    132001: "template does not exist in this language or is not approved",
    132015: "template is paused by Meta for low quality",
    132016: "template is disabled by Meta",
    131049: "not delivered to keep the user's marketing experience healthy "
            "(per-user marketing limit)",
    131050: "the user has stopped marketing messages from this business",
}


def reason(code: int | None, title: str | None) -> str | None:
    """A failure's title as a subscriber should read it."""
    explained = REASONS.get(code) if code is not None else None
    if explained is None:
        return title
    return f"{explained} ({title})" if title else explained
