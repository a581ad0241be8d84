"""SSRF suite: webhook URLs aimed at this host in every spelling, against the
real service (`python -m bot serve`, sandbox provider), with no
`allow_private_networks`.

Only a loopback listener exists, and it counts every request reaching it.
- IP literals, whatever their spelling (decimal, hex, octal, short, full-width,
  trailing dot, IPv4-mapped and 6to4 IPv6, link-local and private ones spelled
  oddly): config load refuses them, so each is put in the config file and a
  reload must be refused, naming subscriber and URL, with the old config kept;
  a start with one must be refused too. No message is sent while a config
  holding one of them could be in force, so even a broken guard could not send
  traffic off this host.
- Names of this host (`localhost` and its spellings) pass config load; messages
  to the subscriber must end in one `refused` attempt per delivery, readable in
  GET /admin/deliveries/{id}. Only names that resolve to loopback here are used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from reliability.common import ROOT, Row, free_port

SUITE = "ssrf"
ADMIN_TOKEN = "ssrf-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WEBHOOK_SECRET = "whsec_" + "c3NyZi1zdWl0ZS1zaWduaW5nLWtleS0wMTIzNDU2Nzg5"
STARTUP_TIMEOUT = 30.0
SETTLE_TIMEOUT = 30.0

# IP-literal spellings, each with what it denotes. The small form runs the first
# SMALL_LITERALS; all of them denote loopback or another private/special address.
LITERALS = [
    ("2130706433", "127.0.0.1, one decimal number"),
    ("0x7f.0.0.1", "127.0.0.1, hex part"),
    ("0177.0.0.1", "127.0.0.1, octal part"),
    ("127.1", "127.0.0.1, short form"),
    ("１２７．０．０．１", "127.0.0.1, full-width digits and dots"),
    ("127.0.0.1.", "127.0.0.1, trailing dot"),
    ("[::ffff:127.0.0.1]", "127.0.0.1, IPv4-mapped IPv6"),
    ("[2002:7f00:1::]", "127.0.0.1, 6to4 IPv6"),
    ("[::1]", "IPv6 loopback"),
    ("169.254.169.254", "cloud metadata, link-local"),
    ("0xa.0.0.1", "10.0.0.1, hex part"),
    ("0300.0250.1.1", "192.168.1.1, octal"),
    # the small form stops here
    ("127.0.0.1", "loopback, canonical"),
    ("0x7f000001", "127.0.0.1, one hex number"),
    ("017700000001", "127.0.0.1, one octal number"),
    ("127.0.1", "127.0.0.1, short form"),
    ("127.000.000.001", "127.0.0.1, zero-padded"),
    ("127.0.0.1..", "127.0.0.1, two trailing dots"),
    ("１２７.０.０.１", "127.0.0.1, full-width digits"),
    ("127。0。0。1", "127.0.0.1, ideographic full stops"),
    ("¹²⁷.0.0.1", "127.0.0.1, superscript digits"),
    ("127.255.255.254", "loopback, canonical"),
    ("0", "0.0.0.0, this host"),
    ("0.0.0.0", "this host"),
    ("[::ffff:7f00:1]", "127.0.0.1, IPv4-mapped IPv6 in hex"),
    ("[0:0:0:0:0:ffff:127.0.0.1]", "127.0.0.1, IPv4-mapped IPv6 long form"),
    ("[::127.0.0.1]", "127.0.0.1, IPv4-compatible IPv6"),
    ("[64:ff9b::7f00:1]", "127.0.0.1, NAT64 IPv6"),
    ("[::]", "IPv6 unspecified"),
    ("2852039166", "169.254.169.254, one decimal number"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254, hex"),
    ("169.254.43518", "169.254.169.254, short form"),
    ("[::ffff:169.254.169.254]", "169.254.169.254, IPv4-mapped IPv6"),
    ("[2002:a9fe:a9fe::]", "169.254.169.254, 6to4 IPv6"),
    ("[fe80::1]", "IPv6 link-local"),
    ("10.1", "10.0.0.1, short form"),
    ("012.0.0.1", "10.0.0.1, octal part"),
    ("167772161", "10.0.0.1, one decimal number"),
    ("１０.０.０.１", "10.0.0.1, full-width digits"),
    ("192.168.257", "192.168.1.1, short form"),
    ("3232235777", "192.168.1.1, one decimal number"),
    ("0xc0a80101", "192.168.1.1, one hex number"),
    ("192.168.1.1.", "192.168.1.1, trailing dot"),
    ("172.16.0.1", "private, canonical"),
    ("172.016.0.1", "172.14.0.1, octal part"),
    ("0xac.0x10.0.1", "172.16.0.1, hex"),
    ("2886729729", "172.16.0.1, one decimal number"),
    ("[fd00::1]", "IPv6 unique local"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("100.64.0.1", "shared address space"),
]
SMALL_LITERALS = 12
# Names of this host: used only when they resolve to loopback (and nothing else) here.
NAMES = ["localhost", "ｌｏｃａｌｈｏｓｔ", "localhost.", "LOCALHOST", "LocalHost."]
SMALL_NAMES = 2


@dataclass
class Listener:
    """The only receiver: a loopback HTTP server that counts what reaches it."""

    port: int = 0
    hits: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(text="ok")


@asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    listener = Listener()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", listener.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        listener.port = int(runner.addresses[0][1])
        yield listener
    finally:
        await runner.cleanup()


def config_text(db: Path, port: int, urls: list[str]) -> str:
    """The service's config: subscriber acme (enterprise) owns sandbox number 2 and
    has one standard webhook per URL; no allow_private_networks."""
    hooks = "".join(textwrap.dedent(f"""
        [[subscribers.webhooks]]
        url = "{url}"
        format = "standard"
        secret = "{WEBHOOK_SECRET}"
    """) for url in urls)
    return textwrap.dedent(f"""
        [server]
        host = "127.0.0.1"
        port = {port}

        [storage]
        url = "sqlite:///{db}"

        [admin]
        token = "{ADMIN_TOKEN}"

        [locales]
        dir = "{ROOT / 'locales'}"

        [webhooks]
        timeout = 2
        retry_schedule = [0, 0.2, 0.4]
        allow_private_networks = []

        [[instances]]
        id = 1
        number = "+15550001111"

        [[instances]]
        id = 2
        number = "+15550002222"
        owner = "acme"

        [[subscribers]]
        id = "acme"
        client_id = "dev@acme.example"
        secret = "acme-api-secret"
        plan = "enterprise"
        since = 2025-01-01
        instances = [1]
    """) + hooks


def write(path: Path, text: str) -> None:
    # Write then rename, as an editor does: a reload never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def loopback_only(host: str) -> bool:
    """Whether `host` resolves here, and only to loopback addresses."""
    try:
        infos = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


@asynccontextmanager
async def service(config: Path, port: int, log: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`python -m bot serve` in a subprocess, ready on /readyz; SIGTERM at the end."""
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, waited on below
            [sys.executable, "-m", "bot", "serve", "--config", str(config)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"wagate exited: {read(log)}")
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("wagate did not become ready")
                await asyncio.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


async def start_refused(config: Path, port: int, log: Path) -> str | None:
    """Start the service on `config`: its output when it refuses to start, None
    when it comes up (it is stopped at once)."""
    try:
        async with service(config, port, log):
            return None
    except RuntimeError as exc:
        return str(exc)


def names_subscriber_and_url(message: str, url: str) -> bool:
    return "'acme'" in message and repr(url) in message


async def admin(http: aiohttp.ClientSession, method: str, url: str) -> tuple[int, Any]:
    async with http.request(method, url, headers=ADMIN) as resp:
        return resp.status, await resp.json()


async def run(small: bool, workdir: Path) -> list[Row]:
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    literals = LITERALS[:SMALL_LITERALS] if small else LITERALS
    candidates = NAMES[:SMALL_NAMES] if small else NAMES
    messages = 2 if small else 20
    startups = literals[:1] if small else literals[:4]
    rows: list[Row] = []

    async with listening() as listener, aiohttp.ClientSession() as http:
        # The listener must count what reaches it, or a 0 below would mean nothing.
        async with http.post(f"http://127.0.0.1:{listener.port}/self-check") as resp:
            assert resp.status == 200
        listener_counts, listener.hits = listener.hits == 1, 0

        def url_of(host: str, path: str) -> str:
            return f"http://{host}:{listener.port}{path}"

        names = [n for n in candidates
                 if await asyncio.to_thread(loopback_only, URL(url_of(n, "/")).raw_host or "")]
        port = free_port()
        config, db = workdir / "wagate.toml", workdir / "wagate.db"
        good = config_text(db, port, [url_of(n, f"/name-{i}") for i, n in enumerate(names)])
        write(config, good)
        base = f"http://127.0.0.1:{port}"

        async with service(config, port, workdir / "wagate.log"):
            # 1. Reloads with each literal, before any message is sent.
            slipped: list[str] = []
            _, first = await admin(http, "GET", f"{base}/admin/config")
            for i, (host, denotes) in enumerate(literals):
                url = url_of(host, f"/literal-{i}")
                write(config, config_text(db, port, [url]))
                status, body = await admin(http, "POST", f"{base}/admin/reload")
                if status != 422 or not names_subscriber_and_url(body["error_message"], url):
                    slipped.append(f"{host} ({denotes})")
                if status == 200:  # the guard let it in: put the good config back at once
                    write(config, good)
                    await admin(http, "POST", f"{base}/admin/reload")
            write(config, good)
            _, last = await admin(http, "GET", f"{base}/admin/config")
            old_kept = first == last

            # 2. Messages to the subscriber: deliveries to the names of this host.
            for i in range(messages):
                async with http.post(f"{base}/sandbox/inbound", headers=ADMIN, json={
                        "instance": 2, "from": f"+3460000{i:04d}", "text": f"ssrf {i}"}) as resp:
                    assert resp.status == 200, await resp.text()
            deliveries = await settled(http, base)
            visible = 0
            for d in deliveries:
                _, shown = await admin(http, "GET", f"{base}/admin/deliveries/{d['id']}")
                log = shown["delivery"]["attempt_log"]
                if [a["outcome"] for a in log] == ["refused"] and \
                        "loopback" in (log[0]["error"] or ""):
                    visible += 1

        # 3. Starting with such a URL is refused.
        refused_starts = 0
        for i, (host, _) in enumerate(startups):
            url, start_port = url_of(host, f"/start-{i}"), free_port()
            # A database of its own: nothing queued earlier could go anywhere.
            write(config, config_text(workdir / f"start-{i}.db", start_port, [url]))
            output = await start_refused(config, start_port, workdir / f"start-{i}.log")
            if output is not None and names_subscriber_and_url(output, url):
                refused_starts += 1
        hits = listener.hits

    expected = len(names) * messages
    rows += [
        Row(suite=SUITE, measure="IP-literal spellings refused by reload (naming subscriber, URL)",
            figure=f"{len(literals) - len(slipped)}/{len(literals)}"
                   + (f"; not refused: {', '.join(slipped)}" if slipped else ""),
            target=f"{len(literals)}/{len(literals)}", met=not slipped),
        Row(suite=SUITE, measure="config in force unchanged after the refused reloads",
            figure="yes" if old_kept else "no", target="yes", met=old_kept),
        Row(suite=SUITE, measure="starts refused with such a URL",
            figure=f"{refused_starts}/{len(startups)}", target=f"{len(startups)}/{len(startups)}",
            met=refused_starts == len(startups)),
        Row(suite=SUITE, measure="names of loopback used (resolving to loopback only here)",
            figure=f"{len(names)}/{len(candidates)}: {', '.join(names) or 'none'}"),
        Row(suite=SUITE, measure="deliveries to those names refused once, shown in attempt log",
            figure=f"{visible}/{len(deliveries)} (expected {expected})",
            target=f"{expected}/{expected}", met=visible == len(deliveries) == expected),
        Row(suite=SUITE, measure="requests reaching the loopback listener",
            figure=str(hits) if listener_counts else f"{hits} (listener did not count!)",
            target="0", met=hits == 0 and listener_counts),
    ]
    return rows


async def settled(http: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    """acme's deliveries once none is pending (bounded in time)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        _, body = await admin(http, "GET", f"{base}/admin/deliveries?subscriber=acme&limit=1000")
        rows = body["deliveries"]
        if (rows and all(d["status"] != "pending" for d in rows)) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.1)
