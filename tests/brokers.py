"""The local brokers (NATS JetStream, RabbitMQ, Redis) as the broker tests,
`make reliability` and `make bench` use them: each test run makes its own
stream, exchange and queue, or Redis stream (names unique to the run), reads
what wagate published the way a subscriber's consumer would, and removes them
after. A missing broker skips loudly, or fails with
WAGATE_TEST_BROKERS_REQUIRED=1 (CI)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

NATS = ("127.0.0.1", 4222)
RABBITMQ = ("127.0.0.1", 5672)
REDIS = ("127.0.0.1", 6379)
BROKERS_SKIP = "BROKER TESTS SKIPPED"


def unreachable(address: tuple[str, int]) -> str | None:
    """Why nothing answers at `address`, or None."""
    try:
        socket.create_connection(address, timeout=1.0).close()
    except OSError as exc:
        return f"nothing answers at {address[0]}:{address[1]} ({exc})"
    return None


def require(address: tuple[str, int], what: str) -> None:
    import pytest

    why = unreachable(address)
    if why is None:
        return
    if os.environ.get("WAGATE_TEST_BROKERS_REQUIRED") == "1":
        pytest.fail(f"WAGATE_TEST_BROKERS_REQUIRED=1 but {what}: {why}")
    # Off CI a developer may run without the brokers: the skip says so loudly
    # (BROKERS_SKIP is also summed up at the end of the run); CI sets REQUIRED above.
    pytest.skip(f"{BROKERS_SKIP}: {what}: {why}")


@dataclass
class Received:
    """One message as the consumer got it."""

    headers: dict[str, str]
    body: bytes
    dedup_id: str | None  # Nats-Msg-Id, AMQP message_id; Redis has none
    at: float = 0.0  # when the broker stored it (NATS), else when it was read


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Broker(ABC):
    """One local broker as a test's consumer sees it; each kind implements all four."""

    name = ""
    address: tuple[str, int] = ("", 0)

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:10]

    @abstractmethod
    def url(self, port: int | None = None) -> str:
        ...

    @abstractmethod
    def missing_url(self) -> str:
        """Where the stream, exchange or subject has no taker yet (`create` makes it)."""
        ...

    async def create(self) -> None:  # most brokers need nothing made first
        return None

    @abstractmethod
    async def stored(self) -> int:
        """How many messages the stream, queue or Redis stream holds."""
        ...

    @abstractmethod
    async def consume(self, count: int, timeout: float = 30.0) -> list[Received]:
        ...

    async def close(self) -> None:  # most hold nothing to close
        return None


class NatsBroker(Broker):
    name = "nats"
    address = NATS

    def __init__(self) -> None:
        super().__init__()
        self.stream = f"wagate_{self.run}"
        self.subject = f"wagate.{self.run}.events"
        self.nc: Any = None

    def url(self, port: int | None = None) -> str:
        return f"nats://127.0.0.1:{port or NATS[1]}/{self.subject}"

    def missing_url(self) -> str:
        return self.url()

    async def create(self) -> None:
        js = await self._js()
        await js.add_stream(name=self.stream, subjects=[self.subject])
        self.created = True

    async def stored(self) -> int:
        return int((await (await self._js()).stream_info(self.stream)).state.messages)

    async def _js(self) -> Any:
        import nats

        if self.nc is None:
            self.nc = await nats.connect(f"nats://{NATS[0]}:{NATS[1]}")
        return self.nc.jetstream()

    async def consume(self, count: int, timeout: float = 30.0) -> list[Received]:
        js = await self._js()
        sub = await js.pull_subscribe(self.subject, durable=f"c{self.run}", stream=self.stream)
        got: list[Received] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            try:
                msgs = await sub.fetch(batch=min(500, count - len(got)), timeout=1.0)
            except TimeoutError:
                continue
            for msg in msgs:
                headers = dict(msg.headers or {})
                got.append(Received(headers, msg.data, headers.get("Nats-Msg-Id"),
                                    msg.metadata.timestamp.timestamp()))
                await msg.ack()
        return got

    async def close(self) -> None:
        if self.nc is not None:
            try:
                await self.nc.jetstream().delete_stream(self.stream)
            except Exception:
                pass
            await self.nc.close()


class AmqpBroker(Broker):
    name = "amqp"
    address = RABBITMQ

    def __init__(self) -> None:
        super().__init__()
        self.exchange = f"wagate-{self.run}"
        self.queue = f"wagate-{self.run}"
        self.conn: Any = None

    def url(self, port: int | None = None) -> str:
        return (f"amqp://guest:guest@127.0.0.1:{port or RABBITMQ[1]}/"
                f"?exchange={self.exchange}&routing_key=events")

    def missing_url(self) -> str:
        return self.url()

    async def _channel(self) -> Any:
        import aio_pika

        if self.conn is None:
            self.conn = await aio_pika.connect(host=RABBITMQ[0], port=RABBITMQ[1])
            self.channel = await self.conn.channel()
        return self.channel

    async def create(self) -> None:
        import aio_pika

        channel = await self._channel()
        exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.DIRECT)
        queue = await channel.declare_queue(self.queue, durable=True)
        await queue.bind(exchange, routing_key="events")

    async def stored(self) -> int:
        queue = await (await self._channel()).declare_queue(self.queue, passive=True)
        return int(queue.declaration_result.message_count or 0)

    async def consume(self, count: int, timeout: float = 30.0) -> list[Received]:
        channel = await self._channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.get_queue(self.queue)
        got: list[Received] = []

        async def take() -> None:
            async with queue.iterator() as messages:
                async for msg in messages:
                    async with msg.process():
                        assert msg.delivery_mode == 2  # persistent
                        got.append(Received({k: _text(v) for k, v in (msg.headers or {}).items()},
                                            msg.body, msg.message_id))
                    if len(got) >= count:
                        return
        try:
            await asyncio.wait_for(take(), timeout)
        except TimeoutError:
            pass
        return got

    async def close(self) -> None:
        if self.conn is not None:
            channel = await self._channel()
            await channel.queue_delete(self.queue)
            await channel.exchange_delete(self.exchange)
            await self.conn.close()


class RedisBroker(Broker):
    name = "redis"
    address = REDIS

    def __init__(self) -> None:
        super().__init__()
        self.stream = f"wagate:{self.run}"
        self.client: Any = None
        self.seen = "0-0"

    def url(self, port: int | None = None) -> str:
        return f"redis://127.0.0.1:{port or REDIS[1]}/0?stream={self.stream}&maxlen=100000"

    def missing_url(self) -> str:
        return self.url()

    def _redis(self) -> Any:
        import redis.asyncio

        if self.client is None:
            self.client = redis.asyncio.Redis(host=REDIS[0], port=REDIS[1])
        return self.client

    async def create(self) -> None:
        await self._redis().xgroup_create(self.stream, "consumers", id="0", mkstream=True)

    async def stored(self) -> int:
        return int(await self._redis().xlen(self.stream))

    async def consume(self, count: int, timeout: float = 30.0) -> list[Received]:
        client = self._redis()
        got: list[Received] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            answer = await client.xreadgroup("consumers", "c1", {self.stream: ">"},
                                             count=500, block=200)
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    text = {_text(k): v for k, v in fields.items()}
                    body = text.pop("body")
                    got.append(Received({k: _text(v) for k, v in text.items()}, body, None))
                    await client.xack(self.stream, "consumers", entry_id)
        return got

    async def close(self) -> None:
        if self.client is not None:
            await self.client.delete(self.stream)
            await self.client.aclose()


BROKERS: dict[str, type[Broker]] = {"nats": NatsBroker, "amqp": AmqpBroker,
                                    "redis": RedisBroker}


class Proxy:
    """A TCP relay on a loopback port in front of a broker, that can be shut
    (the port closed: connections refused) and opened again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def shut(self) -> None:
        """Close the port and cut every relayed connection."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.links):
            writer.close()
        self.links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.links.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.links.discard(writer)
        self.links.discard(up_writer)
