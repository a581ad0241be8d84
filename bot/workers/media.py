"""The media worker: fetches the files users send, once, and keeps them.

A message carrying a file queues its fetch in the message's own transaction
(Effects.media), so a crash between receipt and fetch loses nothing: the
next start finds the job pending (its claim released) and fetches it. Each
file is fetched with its provider's credentials (bot/providers/<name>/media.py)
through a `MediaClient` bounded by `[media] max_bytes` for its kind; a fetch
that fails for a passing reason is tried again (RETRY_DELAYS), then recorded
failed. Either end releases the message.received deliveries waiting for the
file, which then carry its signed link or `media.error` (`MediaLinks.fill`).
Files past `[media] retention_days` are deleted (PURGE_EVERY).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from bot.config.snapshot import Snapshot
from bot.media_links import KEY_NAME, MEDIA_ID, signed_link
from bot.store.models import MediaJob, MediaResult
from bot.store.protocol import MediaStore
from bot.workers.lifecycle import finish
from bot.workers.media_fetch import FetchFailed, MediaClient, MediaFetch

log = logging.getLogger("wagate.media")

BATCH = 8  # files fetched at once by one process
RETRY_DELAYS = (5.0, 30.0)  # after the first and second failed attempt; then failed
PURGE_EVERY = 3600.0


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


class MediaLinks:
    """The signed links of kept files, and the `media` object a delivery carries."""

    def __init__(self, store: MediaStore, snapshot: Callable[[], Snapshot]) -> None:
        self.store = store
        self.snapshot = snapshot
        self._key: bytes | None = None

    async def key(self) -> bytes:
        if self._key is None:
            self._key = await self.store.server_key(KEY_NAME)
        return self._key

    async def fill(self, payload: str) -> str:
        """A standard message.received body with its `media` complete: size,
        sha256, url and expires_at once the file is kept, else `error`."""
        body = json.loads(payload)
        media = body.get("data", {}).get("media")
        if not isinstance(media, dict) or not MEDIA_ID.fullmatch(str(media.get("id"))):
            return payload
        info = await self.store.media_info(media["id"])
        if info is not None and info.status == "ready" and info.expires_at > time.time():
            expires = int(info.expires_at)
            media.update(mime_type=info.mime_type or media.get("mime_type"), size=info.size,
                         sha256=info.sha256, expires_at=_iso(expires),
                         url=signed_link(self.snapshot().config.server.base_url,
                                         await self.key(), info.id, expires))
        elif info is None or info.status == "ready":
            media["error"] = "the file is no longer kept"
        elif info.status == "failed":
            media["error"] = info.error or "the file could not be fetched"
        else:
            media["error"] = ("the file was not fetched in time"
                              + (f" ({info.error})" if info.error else ""))
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class MediaWorker:
    def __init__(self, store: MediaStore, snapshot: Callable[[], Snapshot],
                 fetchers: Mapping[str, MediaFetch], *, plain: aiohttp.ClientSession,
                 guarded: aiohttp.ClientSession, holder: str = "media",
                 on_fetched: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.snapshot = snapshot
        self.fetchers = fetchers
        self.plain = plain
        self.guarded = guarded
        self.holder = holder
        self.on_fetched = on_fetched  # outcome: fetched | retry | failed
        self.wake = asyncio.Event()
        self.running = False
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._purged_at = 0.0

    def notify(self) -> None:
        """Files to fetch were queued (the store's wake-up, `on_work`)."""
        self.wake.set()

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def close(self) -> None:
        """Nothing to close: its sessions are the app's."""

    async def drain(self, grace: float) -> None:
        """After stop(): fetches under way end (bounded); the rest are cancelled
        and their claims released at the next start."""
        await finish(self._tasks, grace)

    async def run(self) -> None:
        self.running = True
        try:
            await self._loop()
        finally:
            self.running = False

    async def _loop(self) -> None:
        released = False
        while not self._stopping:
            try:
                if not released:  # a killed run's claims come back now
                    await self.store.release_media_claims(
                        None if self.store.single_process else self.holder)
                    released = True
                now = time.time()
                if now - self._purged_at >= PURGE_EVERY:
                    gone = await self.store.purge_media(now)
                    self._purged_at = now
                    if gone:
                        log.info("deleted %d inbound media files past retention", gone)
                room = BATCH - len(self._tasks)
                jobs = await self.store.claim_media(
                    now, room, self.snapshot().config.media.fetch_timeout * 3 + 30.0,
                    self.holder) if room > 0 else []
                for job in jobs:
                    task = asyncio.create_task(self._fetch(job), name=f"media-{job.id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                if not jobs and not self._stopping:
                    await self._idle(room > 0)
            except Exception:  # the store hiccuped: log, breathe, go on
                log.exception("media worker iteration failed")
                await asyncio.sleep(1.0)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("media fetch crashed", exc_info=task.exception())
        self.wake.set()

    async def _idle(self, may_claim: bool) -> None:
        self.wake.clear()
        timeout = 5.0
        if may_claim:
            due = await self.store.next_media_due()
            if due is not None:
                timeout = min(timeout, max(0.0, due - time.time()))
        if timeout > 0:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _fetch(self, job: MediaJob) -> None:
        cfg = self.snapshot().config
        section: Any = cfg.providers.get(job.provider)
        fetch = self.fetchers.get(job.provider)
        now = time.time()
        try:
            if fetch is None or section is None:
                raise FetchFailed(f"provider {job.provider} does not serve media here")
            client = MediaClient(plain=self.plain, guarded=self.guarded,
                                 trusted=fetch.base_url(section), limit=cfg.media.limit(job.kind),
                                 timeout=cfg.media.fetch_timeout,
                                 allowed=cfg.webhooks.allow_private_networks)
            got = await fetch.fetch(job, section, client)
            result = MediaResult(content=got.content, sha256=got.sha256,
                                 mime_type=job.mime_type or got.mime_type)
            outcome = "fetched"
        except FetchFailed as exc:
            later = job.attempts < len(RETRY_DELAYS) and exc.retry
            result = MediaResult(error=str(exc)[:500], retry_at=time.time() + RETRY_DELAYS[
                job.attempts] if later else None)
            outcome = "retry" if later else "failed"
            log.warning("media %s of %s message (%s): %s%s", job.id, job.provider, job.kind,
                        exc, "; tried again later" if later else "")
        # Deliveries waiting for the file are released: the store wakes their worker.
        await self.store.finish_media(job.id, result, time.time())
        log.debug("media %s %s in %.2fs", job.id, outcome, time.time() - now)
        if self.on_fetched is not None:
            self.on_fetched(outcome)
