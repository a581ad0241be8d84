"""A user's file on Twilio: `MediaUrlN` with the account's credentials (HTTP
basic auth), following its redirect to where the file is kept (without them)."""

from __future__ import annotations

from bot.providers.twilio.config import TwilioConfig
from bot.providers.twilio.outbound import basic_auth
from bot.store.models import MediaJob
from bot.workers.media_fetch import Downloaded, FetchFailed, MediaClient, MediaFetch


async def fetch(job: MediaJob, twilio: TwilioConfig, client: MediaClient) -> Downloaded:
    if not job.source_url:
        raise FetchFailed("the message named no MediaUrl")
    return await client.get(job.source_url, {"Authorization": basic_auth(twilio)})


MEDIA = MediaFetch(base_url=lambda twilio: twilio.api_base_url, fetch=fetch)
