"""NATS JetStream: `nats://[user[:password]@]host[:4222]/subject`.

The publish waits for the stream's ack (the message is stored); `webhook-id`
is `Nats-Msg-Id`, so the stream drops a re-sent duplicate within its
duplicate window. A subject no stream takes is a failed attempt (wagate never
creates streams). A password alone (`nats://:token@host`) is a token.
A batch of deliveries is published at once over one connection per server,
its acks awaited together.
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

CLIENT = "nats"
PORT = 4222


def check(url: URL) -> str | None:
    subject = url.path.strip("/")
    if not subject or "/" in subject or any(c in subject for c in " *>"):
        return "a nats URL names one subject as its path: nats://host:4222/subject"
    return None


def create(session: aiohttp.ClientSession, allowed: AllowedNetworks) -> NatsDestination:
    return NatsDestination(allowed)


Server = tuple[str, int, str | None, str | None]  # host, port, user, password


class NatsDestination(Destination):
    batch = 64  # publishes in flight at once, their acks awaited together

    def __init__(self, allowed: AllowedNetworks) -> None:
        self.allowed = allowed
        self._clients: dict[Server, tuple[Any, Any]] = {}  # the connection, its JetStream
        self._lock = asyncio.Lock()  # one connect at a time, not one per waiting delivery

    async def _jetstream(self, url: URL, password: str | None, within: float) -> Any:
        import nats  # the brokers extra, loaded when a webhook names NATS

        server = _server(url, password)
        async with self._lock:
            nc, js = self._clients.get(server, (None, None))
            if nc is None or nc.is_closed:
                address = await public_address(server[0], server[1], self.allowed)
                auth: dict[str, Any] = {"user": url.user, "password": password} \
                    if url.user else {"token": password} if password else {}
                errors: list[Exception] = []

                async def record(exc: Exception) -> None:  # instead of the client's log
                    errors.append(exc)
                try:
                    # Two quick tries, no reconnecting: the deliverer's schedule retries.
                    nc = await nats.connect(f"nats://{address}:{server[1]}", name="wagate",
                                            connect_timeout=within, allow_reconnect=False,
                                            max_reconnect_attempts=1, reconnect_time_wait=0,
                                            error_cb=record, closed_cb=_quiet, **auth)
                except nats.errors.NoServersError:
                    why = errors[-1] if errors else "no answer"
                    raise ConnectionError(f"cannot connect: {why}") from None
                js = nc.jetstream()
                self._clients[server] = (nc, js)
        return js

    async def send(self, hook: WebhookConfig, message: Message, within: float) -> Outcome:
        return (await self.send_batch(hook, [message], within))[0]

    async def send_batch(self, hook: WebhookConfig, messages: Sequence[Message],
                         within: float) -> list[Outcome]:
        url = URL(hook.url)
        subject = url.path.strip("/")
        acks: list[asyncio.Future[Any]] = []
        try:
            js = await self._jetstream(url, hook.password, within)
            for message in messages:  # written together by the client's flusher
                acks.append(await js.publish_async(
                    subject, message.body,
                    headers={**message.headers, "Nats-Msg-Id": message.id}))
            _, late = await asyncio.wait(acks, timeout=within)
        except Exception as exc:  # the client's errors have no common base
            late = set(acks)
            failed = failure(exc)
        else:
            failed = Outcome(error=f"timed out after {within:g}s")
        for ack in late:
            ack.cancel()
        if late:  # no answer: the next attempt connects anew
            await self._forget(_server(url, hook.password))
        return [_outcome(subject, ack) if ack not in late else failed for ack in acks] + \
            [failed] * (len(messages) - len(acks))

    async def _forget(self, server: Server) -> None:
        """A failed connection is closed, so the next attempt connects anew."""
        nc, _ = self._clients.pop(server, (None, None))
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:  # it is being dropped either way
                pass

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for nc, _ in clients:
            if not nc.is_closed:
                await nc.close()


def _server(url: URL, password: str | None) -> Server:
    return (url.raw_host or "", url.port or PORT, url.user, password)


def _outcome(subject: str, ack: asyncio.Future[Any]) -> Outcome:
    from nats.js.errors import NoStreamResponseError

    error = ack.exception()
    if isinstance(error, NoStreamResponseError):
        return Outcome(error=f"no JetStream stream takes subject {subject!r}")
    if error is not None:
        return failure(error)
    pub = ack.result()
    return Outcome(delivered=True, body=f"stream {pub.stream} seq {pub.seq}"
                   + (" (duplicate)" if pub.duplicate else ""))


async def _quiet() -> None:
    """A closed connection is seen at the next attempt."""
