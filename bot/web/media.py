"""`GET /media/{id}`: a file a user sent, by the signed link its
message.received carried (docs/receiving.md, "Media"). The link is the
credential: its signature is checked in constant time, then its expiry,
then that the file is still kept."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

from aiohttp import web

from bot.media_links import MEDIA_ID, link_is_genuine
from bot.web.catalog import Error
from bot.web.errors import fail
from bot.web.keys import media_links_key, providers_key
from bot.web.operations import ApiRoutes, path_param, query

routes = ApiRoutes()
# A type as providers give it ("audio/ogg; codecs=opus"); anything else goes as bytes.
_MIME = re.compile(r"[\w.+-]+/[\w.+-]+(; ?[\w.+-]+=[\w.+\"-]+)*")


@routes.operation(
    "get", "/media/{id}", summary="A file a user sent",
    tag="media", security="open", ok={"type": "string", "format": "binary"},
    ok_description="The file, with its type", ok_content_type="application/octet-stream",
    errors=(Error.BAD_SIGNATURE, Error.URL_EXPIRED, Error.MEDIA_GONE, Error.NOT_CONFIGURED),
    description="By the signed link (`media.url`) a `message.received` carries; valid "
                "until its `media.expires_at`, when the file is deleted.",
    parameters=(path_param("id", "The file's id (`media.id`)"),
                query("exp", "The link's expiry (Unix seconds)", {"type": "string"}, True),
                query("sig", "The link's signature", {"type": "string"}, True)))
async def media_file(request: web.Request) -> web.StreamResponse:
    links = request.config_dict[media_links_key]
    media_id = request.match_info["id"]
    if not MEDIA_ID.fullmatch(media_id):
        # Not a user's file: a sent message's media, which a provider fetches
        # from us by a link of its own kind (Twilio's).
        for provider in request.config_dict[providers_key].values():
            if provider.serve_media is not None:
                return await provider.serve_media()(request)
        fail(Error.MEDIA_GONE, "no such file")
    exp, sig = request.query.get("exp", ""), request.query.get("sig", "")
    if not link_is_genuine(await links.key(), media_id, exp, sig):
        fail(Error.BAD_SIGNATURE, "this media link is not one wagate signed (or it was "
                                  "changed): use the url the webhook carried, whole")
    if int(exp) < time.time():
        fail(Error.URL_EXPIRED, "this media link has expired: files are kept for "
                                "[media] retention_days")
    found = await links.store.media_content(media_id)
    if found is None or found[0].expires_at < time.time():
        fail(Error.MEDIA_GONE, "this file is no longer kept")
    info, content = found
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
               "Content-Disposition": "attachment" + (
                   f"; filename*=UTF-8''{quote(info.filename, safe='')}" if info.filename else ""),
               "Content-Type": info.mime_type if info.mime_type and _MIME.fullmatch(
                   info.mime_type) else "application/octet-stream"}
    return web.Response(body=content, headers=headers)
