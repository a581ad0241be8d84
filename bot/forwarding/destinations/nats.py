"""NATS JetStream: `nats://[user[:password]@]host[:4222]/subject`.

The publish waits for the stream's ack (the message is stored); `webhook-id`
is `Nats-Msg-Id`, so the stream drops a re-sent duplicate within its
duplicate window. A subject no stream takes is a failed attempt (wagate never
creates streams). A password alone (`nats://:token@host`) is a token.
Concurrent publishes share one connection per server, in flight together.
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

CLIENT = "nats"
PORT = 4222


def check(url: URL) -> str | None:
    subject = url.path.strip("/")
    if not subject or "/" in subject or any(c in subject for c in " *>"):
        return "a nats URL names one subject as its path: nats://host:4222/subject"
    return None


def create(session: aiohttp.ClientSession, allowed: AllowedNetworks) -> NatsDestination:
    return NatsDestination(allowed)


class NatsDestination:
    def __init__(self, allowed: AllowedNetworks) -> None:
        self.allowed = allowed
        self._clients: dict[tuple[str, int, str | None, str | None], Any] = {}
        self._lock = asyncio.Lock()  # one connect at a time, not one per waiting delivery

    async def _jetstream(self, url: URL, password: str | None, within: float) -> Any:
        import nats  # the brokers extra, loaded when a webhook names NATS

        server = (url.raw_host or "", url.port or PORT, url.user, password)
        async with self._lock:
            nc = self._clients.get(server)
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
                self._clients[server] = nc
        return nc.jetstream()

    async def send(self, hook: WebhookConfig, message: Message, within: float) -> Outcome:
        from nats.js.errors import NoStreamResponseError

        url = URL(hook.url)
        subject = url.path.strip("/")
        try:
            js = await self._jetstream(url, hook.password, within)
            ack = await js.publish(subject, message.body, timeout=within,
                                   headers={**message.headers, "Nats-Msg-Id": message.id})
        except NoStreamResponseError:
            return Outcome(error=f"no JetStream stream takes subject {subject!r}")
        except Exception as exc:  # the client's errors have no common base
            await self._forget(url, hook.password)
            return failure(exc)
        return Outcome(delivered=True, body=f"stream {ack.stream} seq {ack.seq}"
                       + (" (duplicate)" if ack.duplicate else ""))

    async def _forget(self, url: URL, password: str | None) -> None:
        """A failed connection is closed, so the next attempt connects anew."""
        nc = self._clients.pop((url.raw_host or "", url.port or PORT, url.user, password), None)
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:  # it is being dropped either way
                pass

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for nc in clients:
            if not nc.is_closed:
                await nc.close()


async def _quiet() -> None:
    """A closed connection is seen at the next attempt."""
