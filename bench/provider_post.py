"""What one provider call costs the service's CPU, and what a leaner path could save.

`python -m bench.provider_post` sends the same text message N times (32 at
once) to the bench's Graph-shaped server on loopback, three ways, alternated
over several rounds, and prints the client process's CPU µs per call:

- **wagate**: `MetaSender.send`, as the outbound worker calls it, on a session
  built as the app builds its provider session;
- **tuned aiohttp**: the same request with what a leaner path would pre-build:
  the URL parsed once, the headers once, the body serialized by hand, no
  cookie jar, no per-call timeout object, the answer parsed from bytes;
- **floor**: a keep-alive HTTP/1.1 client written for this measurement on
  asyncio streams (Content-Length answers only, no TLS, no timeouts): what the
  socket work and the JSON cost with no client library at all. A reference,
  never a candidate: it lacks everything a provider call needs.

Results in docs/PERFORMANCE.md ("The outbound HTTP path").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from bot.config.types import InstanceConfig
from bot.providers.base import SenderContext, TransportMessage
from bot.providers.meta.config import MetaConfig
from bot.providers.meta.outbound import MetaSender

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "EAAG" + "x" * 196  # a Graph access token's length
CONCURRENCY = 32
Call = Callable[[int], Awaitable[str]]


def _body(i: int) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": f"3460{i:07d}", "type": "text",
            "text": {"body": "Hola, ya estás registrado.", "preview_url": False}}


class _Floor:
    """The bare keep-alive client: one connection per concurrent caller."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> bytes:
        if self._free:
            reader, writer = self._free.pop()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (path.encode(), TOKEN.encode(), len(body), body))
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        data = await reader.readexactly(length)
        self._free.append((reader, writer))
        return data

    def close(self) -> None:
        for _, writer in self._free:
            writer.close()


async def _measure(way: str, port: int, count: int) -> float:
    """Client CPU µs per call, `count` calls, CONCURRENCY at once."""
    base = f"http://127.0.0.1:{port}"
    path = "/v21.0/123/messages"
    instance = InstanceConfig(id=1, number="+15550000001", provider="meta",
                              options={"phone_number_id": "123"})
    config = MetaConfig(app_secret="s", verify_token="v", access_token=TOKEN,
                        graph_base_url=base)
    tuned = way == "tuned aiohttp"
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=64)  # as bot/app.py's
    extra: dict[str, Any] = ({"cookie_jar": aiohttp.DummyCookieJar(), "auto_decompress": False,
                              "timeout": aiohttp.ClientTimeout(total=15)} if tuned else {})
    floor = _Floor(port)
    async with aiohttp.ClientSession(connector=connector, **extra) as session:
        sender = MetaSender(SenderContext(section=lambda: config, session=session))
        url = yarl.URL(base + path, encoded=True)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

        async def wagate(i: int) -> str:
            result = await sender.send(instance, TransportMessage(
                id=str(i), to=f"+3460{i:07d}", group_id=None, kind="text",
                text="Hola, ya estás registrado."))
            assert result.provider_message_id, result
            return result.provider_message_id

        async def tuned_call(i: int) -> str:
            async with session.post(url, data=json.dumps(_body(i)).encode(),
                                    headers=headers) as resp:
                return json.loads(await resp.read())["messages"][0]["id"]

        async def floor_call(i: int) -> str:
            answer = await floor.post(path, json.dumps(_body(i)).encode())
            return json.loads(answer)["messages"][0]["id"]

        call: Call = {"wagate": wagate, "tuned aiohttp": tuned_call, "floor": floor_call}[way]
        await asyncio.gather(*(call(i) for i in range(CONCURRENCY)))  # connections open
        numbers = iter(range(count))

        async def caller() -> None:
            for i in numbers:
                await call(i)
        started = time.process_time()
        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
        spent = time.process_time() - started
    floor.close()
    return spent / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--port", type=int, default=18777)
    args = parser.parse_args()
    try:
        import uvloop  # the event loop `wagate serve` runs on when installed
        runner: Callable[[Awaitable[float]], float] = uvloop.run
    except ImportError:
        runner = asyncio.run
    server = subprocess.Popen([sys.executable, "-m", "bench.servers", "graph", str(args.port)],
                              cwd=ROOT)
    try:
        time.sleep(1.5)
        ways = ("wagate", "tuned aiohttp", "floor")
        results: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way in ways:
                results[way].append(runner(_measure(way, args.port, args.calls)))
        print(f"client CPU µs per provider call ({args.calls} calls, {CONCURRENCY} at once,"
              f" {args.rounds} alternated rounds):")
        for way, figures in results.items():
            print(f"  {way:14} " + ", ".join(f"{f:.0f}" for f in figures)
                  + f"   (median {sorted(figures)[len(figures) // 2]:.0f})")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
