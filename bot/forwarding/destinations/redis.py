"""Redis Streams: `redis://[user[:password]@]host[:6379]/[db]?stream=s[&maxlen=n]`.

Each delivery is one XADD whose fields are the three `webhook-*` headers and
`body` (the exact bytes that were signed), `maxlen` trimming approximately.
The stream must exist (XADD NOMKSTREAM: wagate never creates streams; a
missing one is a failed attempt). A batch of deliveries is one pipeline: one
round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
from yarl import URL

from bot.config import WebhookConfig
from bot.forwarding.destinations.base import (
    AllowedNetworks,
    Destination,
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


class RedisDestination(Destination):
    batch = 64  # XADDs in one pipeline

    def __init__(self, allowed: AllowedNetworks) -> None:
        self.allowed = allowed
        self._clients: dict[Server, Any] = {}
        self._lock = asyncio.Lock()

    async def _client(self, server: Server, within: float) -> Any:
        import redis.asyncio  # the brokers extra, loaded when a webhook names Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        async with self._lock:
            client = self._clients.get(server)
            if client is None:
                host, port, db, user, password = server
                address = await public_address(host, port, self.allowed)
                client = self._clients[server] = redis.asyncio.Redis(
                    host=address, port=port, db=db, username=user, password=password,
                    socket_timeout=within, socket_connect_timeout=within,
                    retry=Retry(NoBackoff(), 0))  # the deliverer's schedule retries
            return client

    async def send(self, hook: WebhookConfig, message: Message, within: float) -> Outcome:
        return (await self.send_batch(hook, [message], within))[0]

    async def send_batch(self, hook: WebhookConfig, messages: Sequence[Message],
                         within: float) -> list[Outcome]:
        url = URL(hook.url)
        server = (url.raw_host or "", url.port or PORT, int(url.path.strip("/") or 0),
                  url.user, hook.password)
        stream = url.query["stream"]
        maxlen = int(url.query["maxlen"]) if "maxlen" in url.query else None
        try:
            client = await self._client(server, within)
            async with client.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.xadd(stream, {**message.headers, "body": message.body},
                              maxlen=maxlen, approximate=True, nomkstream=True)
                results = await asyncio.wait_for(pipe.execute(raise_on_error=False), within)
        except Exception as exc:  # the connection: every entry of the batch failed
            return [failure(exc)] * len(messages)
        return [_outcome(stream, result) for result in results]

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _outcome(stream: str, result: Any) -> Outcome:
    if isinstance(result, Exception):
        return failure(result)
    if result is None:  # NOMKSTREAM and no stream
        return Outcome(error=f"stream {stream!r} does not exist (wagate never creates it)")
    return Outcome(delivered=True, body=f"entry {result.decode()}")
