"""A user's file on WAHA: `media.url` (or the older `mediaUrl`) with its API key."""

from __future__ import annotations

from yarl import URL

from bot.providers.waha.config import WahaConfig
from bot.store.models import MediaJob
from bot.workers.media_fetch import Downloaded, FetchFailed, MediaClient, MediaFetch


async def fetch(job: MediaJob, waha: WahaConfig, client: MediaClient) -> Downloaded:
    if not job.source_url:
        raise FetchFailed("the message named no media url")
    url = job.source_url
    path = URL(url).raw_path_qs if url.startswith(("http://", "https://")) else ""
    if path.startswith("/api/files/"):
        # WAHA names its files on the host it believes it is (WHATSAPP_API_HOSTNAME,
        # often localhost): its own files are fetched from the base URL we know it by.
        url = waha.base_url + path
    return await client.get(url, {"X-Api-Key": waha.api_key})


MEDIA = MediaFetch(base_url=lambda waha: waha.base_url, fetch=fetch)
