"""Signed, expiring media URLs: Twilio sends images and documents by fetching
`{public_url}/media/{id}?exp=...&sig=...` from us, so the URL itself is the
credential (HMAC-SHA256 over the id and expiry, keyed by TwilioConfig.media_key).
The route that serves them is `serve_media` in inbound.py (by way of bot/web/media.py)."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from bot.providers.twilio.config import TwilioConfig

# Twilio fetches a message's media when it sends it, within seconds; a URL
# lives this long so a message Twilio queues for a while still goes out.
URL_TTL = 4 * 3600.0


def url_signature(key: bytes, message_id: str, expires: int) -> str:
    return hmac.new(key, f"{message_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def media_url(config: TwilioConfig, message_id: str, now: float) -> str:
    expires = int(now + URL_TTL)
    sig = url_signature(config.media_key, message_id, expires)
    return f"{config.public_url}/media/{quote(message_id, safe='')}?exp={expires}&sig={sig}"
