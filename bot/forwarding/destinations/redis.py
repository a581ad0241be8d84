"""Redis Streams: `redis://[user[:password]@]host[:6379]/[db]?stream=s[&maxlen=n]`.

Each delivery is one XADD whose fields are the three `webhook-*` headers and
`body` (the exact bytes that were signed), `maxlen` trimming approximately.
The stream must exist (XADD NOMKSTREAM: wagate never creates streams; a
missing one is a failed attempt). XADDs that arrive together go in one
pipeline: one round trip for a batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from yarl import URL

from bot.config import WebhookConfig
from bot.forwarding.destinations.base import (
    AllowedNetworks,
    Message,
    Outcome,
    failure,
    public_address,
)

CLIENT = "redis"
PORT = 6379


def check(url: URL) -> str | None:
    if not url.query.get("stream"):
        return "a redis URL names its stream: redis://host:6379/0?stream=s"
    if not (url.path.strip("/") or "0").isdigit():
        return "a redis URL's path is a database number: redis://host:6379/0?stream=s"
    maxlen = url.query.get("maxlen")
    if maxlen is not None and not (maxlen.isdigit() and int(maxlen) > 0):
        return "maxlen must be a positive number"
    unknown = set(url.query) - {"stream", "maxlen"}
    if unknown:
        return f"unknown redis URL parameter {sorted(unknown)[0]!r} (stream, maxlen)"
    return None


def create(session: aiohttp.ClientSession, allowed: AllowedNetworks) -> RedisDestination:
    return RedisDestination(allowed)


Server = tuple[str, int, int, str | None, str | None]  # host, port, db, user, password
Entry = tuple[str, dict[str, bytes | str], int | None, "asyncio.Future[Any]"]


class _Batcher:
    """One server's client, and the XADDs waiting for the next pipeline."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.waiting: list[Entry] = []
        self.flushing: asyncio.Task[None] | None = None

    def add(self, stream: str, fields: dict[str, bytes | str],
            maxlen: int | None) -> asyncio.Future[Any]:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting.append((stream, fields, maxlen, done))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.create_task(self._flush())
        return done

    async def _flush(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for stream, fields, maxlen, _ in batch:
                        pipe.xadd(stream, fields, maxlen=maxlen, approximate=True,
                                  nomkstream=True)
                    results = await pipe.execute(raise_on_error=False)
            except Exception as exc:  # the connection: every entry of the batch failed
                results = [exc] * len(batch)
            for (*_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)


class RedisDestination:
    def __init__(self, allowed: AllowedNetworks) -> None:
        self.allowed = allowed
        self._batchers: dict[Server, _Batcher] = {}
        self._lock = asyncio.Lock()

    async def _batcher(self, server: Server, within: float) -> _Batcher:
        import redis.asyncio  # the brokers extra, loaded when a webhook names Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        async with self._lock:
            batcher = self._batchers.get(server)
            if batcher is None:
                host, port, db, user, password = server
                address = await public_address(host, port, self.allowed)
                client = redis.asyncio.Redis(host=address, port=port, db=db, username=user,
                                             password=password, socket_timeout=within,
                                             socket_connect_timeout=within,
                                             # the deliverer's schedule retries, not the client
                                             retry=Retry(NoBackoff(), 0))
                batcher = self._batchers[server] = _Batcher(client)
            return batcher

    async def send(self, hook: WebhookConfig, message: Message, within: float) -> Outcome:
        url = URL(hook.url)
        server = (url.raw_host or "", url.port or PORT, int(url.path.strip("/") or 0),
                  url.user, hook.password)
        stream = url.query["stream"]
        maxlen = int(url.query["maxlen"]) if "maxlen" in url.query else None
        try:
            batcher = await self._batcher(server, within)
            result = await asyncio.wait_for(
                batcher.add(stream, {**message.headers, "body": message.body}, maxlen), within)
        except Exception as exc:
            return failure(exc)
        if isinstance(result, Exception):
            return failure(result)
        if result is None:
            return Outcome(error=f"stream {stream!r} does not exist (wagate never creates it)")
        return Outcome(delivered=True, body=f"entry {result.decode()}")

    async def close(self) -> None:
        batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            await batcher.client.aclose()
