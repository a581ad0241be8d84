"""RabbitMQ (AMQP 0-9-1): `amqp://[user[:password]@]host[:5672]/[vhost]?exchange=x&routing_key=k`.

Persistent messages on a channel with publisher confirms, published
`mandatory`: an attempt is delivered once the broker has confirmed it, and a
message no queue takes comes back as a failed attempt. `webhook-id` is the
message's `message_id`; the Standard Webhooks headers are its headers. A
missing exchange is a failed attempt (wagate never declares exchanges or
queues). One connection per server, one channel per exchange: a missing
exchange closes only its own channel. A batch of deliveries is one write,
its confirms awaited together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
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

CLIENT = "aio_pika"
PORT = 5672
PERSISTENT = 2  # delivery_mode
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


class AmqpDestination(Destination):
    batch = 64  # publishes written together, their confirms awaited together

    def __init__(self, allowed: AllowedNetworks) -> None:
        self.allowed = allowed
        self._connections: dict[Server, Any] = {}
        self._channels: dict[tuple[Server, str], Any] = {}  # by exchange
        self._lock = asyncio.Lock()

    async def _channel(self, server: Server, name: str, within: float) -> Any:
        """The client's (aiormq's) channel for publishing to exchange `name`: aio-pika
        publishes one message per call, its channel takes a batch at once."""
        import aio_pika  # the brokers extra, loaded when a webhook names AMQP

        async with self._lock:
            channel = self._channels.get((server, name))
            if channel is not None and not channel.is_closed:
                return channel
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
            opened = await conn.channel(publisher_confirms=True, on_return_raises=True)
            channel = self._channels[(server, name)] = await opened.get_underlay_channel()
            return channel

    async def send(self, hook: WebhookConfig, message: Message, within: float) -> Outcome:
        return (await self.send_batch(hook, [message], within))[0]

    async def send_batch(self, hook: WebhookConfig, messages: Sequence[Message],
                         within: float) -> list[Outcome]:
        from aiormq.exceptions import ChannelClosed, DeliveryError

        url = URL(hook.url)
        server = _server(url, hook.password)
        name, key = url.query.get("exchange", ""), url.query.get("routing_key", "")
        try:
            channel = await self._channel(server, name, within)
            results = await _publish(channel, name, key, messages, within)
        except Exception as exc:  # the client's errors have no common base
            results = [exc] * len(messages)
        outcomes = [_outcome(result, name, key) for result in results]
        if any(isinstance(r, ChannelClosed) for r in results):
            self._channels.pop((server, name), None)  # a new channel for the next attempt
        elif any(o.error and not isinstance(r, DeliveryError)
                 for o, r in zip(outcomes, results, strict=True)):
            await self._forget(server)
        return outcomes

    async def _forget(self, server: Server) -> None:
        """A failed connection is closed, so the next attempt connects anew."""
        for key in [k for k in self._channels if k[0] == server]:
            del self._channels[key]
        conn = self._connections.pop(server, None)
        if conn is not None and not conn.is_closed:
            try:
                await conn.close()
            except Exception:  # it is being dropped either way
                pass

    async def close(self) -> None:
        for server in list(self._connections):
            await self._forget(server)


def _outcome(result: Any, name: str, key: str) -> Outcome:
    from aiormq.exceptions import ChannelClosed, DeliveryError

    if isinstance(result, DeliveryError):  # returned (unroutable) or nacked
        returned = getattr(result.message, "delivery", None)
        reason = getattr(returned, "reply_text", None)
        return Outcome(error=f"returned by the broker: {reason or 'unroutable'} "
                       f"(exchange {name!r}, routing key {key!r})" if returned
                       else f"refused by the broker (exchange {name!r})")
    if isinstance(result, ChannelClosed):
        return Outcome(error=f"exchange {name!r}: {result}")
    if isinstance(result, BaseException):
        return failure(result)
    return Outcome(delivered=True, body="confirmed")


async def _publish(channel: Any, name: str, key: str, messages: Sequence[Message],
                   within: float) -> list[Any]:
    """Publish a batch in one write and await its confirms together: for each
    message its confirm (Basic.Ack) or the error. aiormq's `basic_publish`
    writes each message by itself (a send per message is most of its cost);
    this is its bookkeeping (delivery tags, confirms, message ids for returns)
    for a batch, under the channel's lock, so the client reads the confirms
    and returns as its own (aiormq 7: pinned in the brokers extra)."""
    from aiormq.abc import ChannelFrame
    from pamqp.body import ContentBody
    from pamqp.commands import Basic
    from pamqp.header import ContentHeader

    frames: list[Any] = []
    for message in messages:
        body, size = message.body, channel.max_content_size
        frames += [Basic.Publish(exchange=name, routing_key=key, mandatory=True),
                   ContentHeader(0, len(body), Basic.Properties(
                       headers=dict(message.headers), message_id=message.id,
                       content_type="application/json", delivery_mode=PERSISTENT)),
                   *(ContentBody(body[i:i + size]) for i in range(0, len(body), size))]
    payload = ChannelFrame.marshall(channel_number=channel.number, frames=frames)
    confirms = []
    async with channel.lock:
        for message in messages:
            channel.delivery_tag += 1
            confirm = channel.create_future()  # failed by the client if the channel closes
            channel.confirmations[channel.delivery_tag] = confirm
            channel.message_id_delivery_tag[message.id] = channel.delivery_tag
            confirm.add_done_callback(functools.partial(
                _forget_id, channel, message.id, channel.delivery_tag))
            confirms.append(confirm)
        await channel.connection.write_queue.put(payload)
    _, late = await asyncio.wait(confirms, timeout=within)
    for confirm in late:
        confirm.cancel()
    return [TimeoutError() if c.cancelled() else c.exception() or c.result() for c in confirms]


def _forget_id(channel: Any, message_id: str, tag: int, _: Any) -> None:
    if channel.message_id_delivery_tag.get(message_id) == tag:
        del channel.message_id_delivery_tag[message_id]
