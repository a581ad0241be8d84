"""RabbitMQ (AMQP 0-9-1): `amqp://[user[:password]@]host[:5672]/[vhost]?exchange=x&routing_key=k`.

Persistent messages on a channel with publisher confirms, published
`mandatory`: an attempt is delivered once the broker has confirmed it, and a
message no queue takes comes back as a failed attempt. `webhook-id` is the
message's `message_id`; the Standard Webhooks headers are its headers. A
missing exchange is a failed attempt (wagate never declares exchanges or
queues). One connection per server, one channel per exchange: a missing
exchange closes only its own channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

CLIENT = "aio_pika"
PORT = 5672
# The client logs each failed connect at ERROR; the attempt log has it already.
logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)


def check(url: URL) -> str | None:
    if "routing_key" not in url.query and not url.query.get("exchange"):
        return ("an amqp URL says where to publish: ?exchange=x&routing_key=k "
                "(or only routing_key=queue, through the default exchange)")
    unknown = set(url.query) - {"exchange", "routing_key"}
    if unknown:
        return f"unknown amqp URL parameter {sorted(unknown)[0]!r} (exchange, routing_key)"
    return None


def create(session: aiohttp.ClientSession, allowed: AllowedNetworks) -> AmqpDestination:
    return AmqpDestination(allowed)


Server = tuple[str, int, str, str | None, str | None]  # host, port, vhost, user, password


def _server(url: URL, password: str | None) -> Server:
    vhost = url.path[1:] or "/"
    return (url.raw_host or "", url.port or PORT, vhost, url.user, password)


class AmqpDestination:
    def __init__(self, allowed: AllowedNetworks) -> None:
        self.allowed = allowed
        self._connections: dict[Server, Any] = {}
        self._exchanges: dict[tuple[Server, str], Any] = {}
        self._lock = asyncio.Lock()

    async def _exchange(self, server: Server, name: str, within: float) -> Any:
        import aio_pika  # the brokers extra, loaded when a webhook names AMQP

        async with self._lock:
            exchange = self._exchanges.get((server, name))
            if exchange is not None and not exchange.channel.is_closed:
                return exchange
            conn = self._connections.get(server)
            if conn is None or conn.is_closed:
                host, port, vhost, user, password = server
                address = await public_address(host, port, self.allowed)
                conn = aio_pika.Connection(aio_pika.connection.make_url(
                    host=address, port=port, virtualhost=vhost, login=user or "guest",
                    password=password or "guest"))
                try:
                    await conn.connect(timeout=within)
                except BaseException:
                    # Closed here, or its finalizer schedules a close nobody awaits.
                    with contextlib.suppress(Exception):
                        await conn.close()
                    raise
                self._connections[server] = conn
            channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
            exchange = channel.default_exchange if not name else \
                await channel.get_exchange(name, ensure=False)
            self._exchanges[(server, name)] = exchange
            return exchange

    async def send(self, hook: WebhookConfig, message: Message, within: float) -> Outcome:
        import aio_pika
        from aio_pika.exceptions import (
            ChannelClosed,
            ChannelNotFoundEntity,
            DeliveryError,
        )

        url = URL(hook.url)
        server = _server(url, hook.password)
        name, key = url.query.get("exchange", ""), url.query.get("routing_key", "")
        try:
            exchange = await self._exchange(server, name, within)
            await exchange.publish(
                aio_pika.Message(message.body, headers=dict(message.headers),
                                 message_id=message.id, content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=key, mandatory=True, timeout=within)
        except DeliveryError as exc:
            reason = getattr(exc.message, "reply_text", None) if exc.message else None
            return Outcome(error=f"returned by the broker: {reason or 'unroutable'} "
                           f"(exchange {name!r}, routing key {key!r})")
        except (ChannelNotFoundEntity, ChannelClosed) as exc:
            self._exchanges.pop((server, name), None)
            return Outcome(error=f"exchange {name!r}: {exc}")
        except Exception as exc:  # the client's errors have no common base
            await self._forget(server)
            return failure(exc)
        return Outcome(delivered=True, body="confirmed")

    async def _forget(self, server: Server) -> None:
        """A failed connection is closed, so the next attempt connects anew."""
        for key in [k for k in self._exchanges if k[0] == server]:
            del self._exchanges[key]
        conn = self._connections.pop(server, None)
        if conn is not None and not conn.is_closed:
            try:
                await conn.close()
            except Exception:  # it is being dropped either way
                pass

    async def close(self) -> None:
        for server in list(self._connections):
            await self._forget(server)
