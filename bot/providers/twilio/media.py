"""Signed, expiring media URLs: Twilio sends images and documents by fetching
`{public_url}/media/{id}?exp=...&sig=...` from us, so the URL itself is the
credential (HMAC-SHA256 over the id and expiry, keyed by TwilioConfig.media_key)."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

from aiohttp import web

from bot.providers.twilio.config import TwilioConfig
from bot.web.catalog import Error
from bot.web.errors import fail
from bot.web.keys import store_key
from bot.web.snapshot import snapshot_of

# Twilio fetches a message's media when it sends it, within seconds; a URL
# lives this long so a message Twilio queues for a while still goes out.
URL_TTL = 4 * 3600.0

routes = web.RouteTableDef()


def url_signature(key: bytes, message_id: str, expires: int) -> str:
    return hmac.new(key, f"{message_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def media_url(config: TwilioConfig, message_id: str, now: float) -> str:
    expires = int(now + URL_TTL)
    sig = url_signature(config.media_key, message_id, expires)
    return f"{config.public_url}/media/{quote(message_id, safe='')}?exp={expires}&sig={sig}"


@routes.get("/media/{id}")
async def serve_media(request: web.Request) -> web.Response:
    section = snapshot_of(request).config.providers.get("twilio")
    if not isinstance(section, TwilioConfig):
        fail(Error.NOT_CONFIGURED, "no provider serves media by URL here")
    message_id = request.match_info["id"][:200]
    exp, sig = request.query.get("exp", ""), request.query.get("sig", "")
    expected = url_signature(section.media_key, message_id, int(exp)) if (
        exp.isascii() and exp.isdigit() and len(exp) <= 12) else ""
    if not expected or not hmac.compare_digest(expected.encode(),
                                               sig.encode("utf-8", "surrogateescape")):
        fail(Error.BAD_SIGNATURE, "this media URL is not one wagate signed")
    if int(exp) < time.time():
        fail(Error.URL_EXPIRED, "this media URL has expired")
    store = request.config_dict[store_key]
    row = await store.get_outbound(message_id)
    media = await store.outbound_media(message_id) if row is not None else None
    if row is None or media is None:
        fail(Error.MEDIA_GONE, "the message's media are no longer kept")
    headers = {"Cache-Control": "private, no-store"}
    if row.filename:
        headers["Content-Disposition"] = (
            "inline; filename*=UTF-8''" + quote(row.filename, safe=""))
    return web.Response(body=media, content_type=row.mime or "application/octet-stream",
                        headers=headers)
