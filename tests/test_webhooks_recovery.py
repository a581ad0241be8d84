"""SIGKILL with deliveries pending (some waiting out a receiver that is down,
some in flight to a receiver that hangs): after a restart every delivery
arrives, and any duplicate carries the same webhook-id. Then the CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ADMIN, ADMIN_TOKEN, ROOT
from tests.test_cli import free_port, start_service, stop_service, wagate
from tests.webhook_helpers import ACME_SECRET, verify
from tests.webhook_helpers import Hit as _Hit

N = 10  # messages per phase


def service_config(tmp_path: Path, port: int, receiver_port: int) -> Path:
    path = tmp_path / "wagate.toml"
    path.write_text(textwrap.dedent(f"""
        [server]
        host = "127.0.0.1"
        port = {port}
        shutdown_timeout = 2

        [storage]
        url = "sqlite:///{tmp_path / 'wagate.db'}"

        [admin]
        token = "{ADMIN_TOKEN}"

        [locales]
        dir = "{ROOT / 'locales'}"

        [webhooks]
        timeout = 5
        retry_schedule = [0, 0.3, 0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
        allow_private_networks = ["127.0.0.0/8"]

        [[instances]]
        id = 1
        number = "+15550001111"
        provider = "sandbox"
        owner = "acme"

        [[subscribers]]
        id = "acme"
        client_id = "dev@acme.example"
        secret = "acme-api-secret"
        plan = "enterprise"
        since = 2025-01-01

        [[subscribers.webhooks]]
        url = "http://127.0.0.1:{receiver_port}/acme"
        secret = "{ACME_SECRET}"
    """))
    return path


class Recorder:
    def __init__(self) -> None:
        self.seen: list[_Hit] = []
        self.acked: list[_Hit] = []
        self.hang = True
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        hit = _Hit(request.path, {k.lower(): v for k, v in request.headers.items()},
                   await request.read(), 0.0)
        self.seen.append(hit)
        if self.hang:
            await self.release.wait()
            return web.Response(status=503)
        verify(hit, ACME_SECRET)
        self.acked.append(hit)
        return web.Response(text="ok")


async def inject(session: aiohttp.ClientSession, base: str, texts: list[str]) -> None:
    for text in texts:
        async with session.post(f"{base}/sandbox/inbound", headers=ADMIN, json={
                "instance": 1, "from": "+34600000001", "text": text}) as resp:
            assert resp.status == 200, await resp.text()


async def until(predicate: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.slow(10)  # a real process, killed
async def test_sigkill_with_deliveries_pending_loses_nothing(tmp_path: Path) -> None:
    port, receiver_port = free_port(), free_port()
    config = service_config(tmp_path, port, receiver_port)
    base = f"http://127.0.0.1:{port}"
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/acme", recorder.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    proc: subprocess.Popen[str] | None = None
    try:
        proc = await asyncio.to_thread(start_service, config, port)
        async with aiohttp.ClientSession() as session:
            async def attempted(n: int) -> bool:
                async with session.get(f"{base}/admin/deliveries", headers=ADMIN) as resp:
                    rows = (await resp.json())["deliveries"]
                return len(rows) >= n and all(r["attempts"] >= 1 for r in rows)

            # Phase 1: the receiver is down; deliveries wait out their retries.
            await inject(session, base, [f"down {i}" for i in range(N)])
            await until(lambda: attempted(N))
            # Phase 2: the receiver is up but hangs; deliveries are in flight.
            await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
            await inject(session, base, [f"hang {i}" for i in range(N)])
            await until(lambda: sum(1 for h in recorder.seen
                                    if h.json["data"]["text"].startswith("hang")) >= N // 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        recorder.hang = False
        recorder.release.set()
        proc = await asyncio.to_thread(start_service, config, port)
        expected = {f"down {i}" for i in range(N)} | {f"hang {i}" for i in range(N)}
        await until(lambda: {h.json["data"]["text"] for h in recorder.acked} >= expected)
        ids: dict[str, set[str]] = {}
        for hit in recorder.seen:
            ids.setdefault(hit.json["data"]["text"], set()).add(hit.headers["webhook-id"])
        assert all(len(v) == 1 for v in ids.values()), ids  # duplicates share their id
        assert len({next(iter(v)) for v in ids.values()}) == 2 * N

        # The CLI, against the restarted service.
        out = await asyncio.to_thread(wagate, "deliveries", "list", "--config", str(config),
                                      "--status", "delivered", "--limit", "100", "--json")
        listed = json.loads(out.stdout)["deliveries"]
        assert len(listed) == 2 * N
        one = listed[0]["id"]
        out = await asyncio.to_thread(wagate, "deliveries", "show", "--config", str(config),
                                      one)
        assert one in out.stdout and "delivered" in out.stdout
        out = await asyncio.to_thread(wagate, "deliveries", "retry", "--config", str(config),
                                      one)
        assert f"{one}: queued again" in out.stdout
        await until(lambda: sum(1 for h in recorder.acked if h.headers["webhook-id"] == one)
                    >= 2)
        out = await asyncio.to_thread(wagate, "deliveries", "replay", "--config", str(config),
                                      "--since", "2020-01-01T00:00:00Z")
        assert ("since 2020-01-01T00:00:00.000Z: 0 failed queued again, 0 pending pulled "
                "forward") in out.stdout
        out = await asyncio.to_thread(wagate, "deliveries", "endpoints", "--config",
                                      str(config))
        assert "acme" in out.stdout and " ok " in out.stdout
        bad = await asyncio.to_thread(wagate, "deliveries", "enable-endpoint", "--config",
                                      str(config), "nope", check=False)
        assert bad.returncode != 0 and "HTTP 404" in bad.stderr
    finally:
        if proc is not None:
            stop_service(proc)
        recorder.release.set()
        await runner.cleanup()
