"""A user's file on Meta: its media id looked up on Graph (with the access
token) gives a short-lived `url`, fetched with the same token."""

from __future__ import annotations

from bot.providers.meta.config import MetaConfig
from bot.store.models import MediaJob
from bot.workers.media_fetch import Downloaded, FetchFailed, MediaClient, MediaFetch


async def fetch(job: MediaJob, meta: MetaConfig, client: MediaClient) -> Downloaded:
    auth = {"Authorization": f"Bearer {meta.access_token}"}
    found = await client.json(f"{meta.graph_base_url}/{meta.api_version}/"
                              f"{job.provider_media_id}", auth)
    url = found.get("url") if isinstance(found, dict) else None
    if not isinstance(url, str) or not url:
        raise FetchFailed("Graph gave no url for the media id")
    got = await client.get(url, auth)
    declared = found.get("file_size")
    if isinstance(declared, int) and declared != len(got.content):
        raise FetchFailed(f"got {len(got.content)} bytes, Graph said {declared}", retry=True)
    return got


MEDIA = MediaFetch(base_url=lambda meta: meta.graph_base_url, fetch=fetch)
