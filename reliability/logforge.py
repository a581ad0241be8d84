"""Log forging: requests whose path, headers and bodies carry a forged log
line (CR LF, a timestamp, "admin logged in"), ANSI escapes, DEL, C1 controls
and Unicode's line separators, each in a place the service logs, against the
real service writing its text log at INFO. Each request carries a unique
marker; afterwards the log must hold exactly one line per marker, every line
must start as a record of the service's own, none as the forged one, and no
raw control character may be in the file.

Where each value is logged: a path by the admin API's refusal (no token), a
CLIENT ID by the send API's refusal (wrong secret), a provider message id by
the duplicate it makes (the sandbox's inbound, sent twice), a CLIENT ID typed
into the portal's login. The wrong-credential requests come from many
loopback addresses, ten each at most, so throttling does not silence them.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from urllib.parse import quote

import aiohttp

from reliability.common import Row
from reliability.service import ADMIN, SANDBOX_INSTANCE, Service

SUITE = "logforge"
FORGED_START = "2026-01-01 00:00:00,000"
FORGED = (f"\r\n{FORGED_START} INFO    wagate.ui [-]: dashboard: admin logged in from 10.0.0.1"
          "\x1b[2J\x7f\x85\u2028\u2029\x00")
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ")
# Anything but LF below 0x20, DEL, C1 controls and the line separators, as written.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
PER_ADDRESS = 10


class LoggingService(Service):
    """The service, its text log at INFO (bench runs it at WARNING)."""

    def start(self, name: str, args: list[str], health: str) -> None:
        if name == "wagate":
            args = ["INFO" if a == "WARNING" else a for a in args]
        super().start(name, args, health)


def _marker(kind: str, i: int) -> str:
    return f"LF{kind}{i}x{uuid.uuid4().hex[:8]}"


def _address(i: int) -> str:
    return f"127.0.4.{i // PER_ADDRESS + 1}"


async def _raw(port: int, head: bytes, body: bytes = b"", source: str = "127.0.0.1") -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(head + b"Content-Length: " + str(len(body)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + body)
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


async def forge(service: Service, count: int) -> dict[str, list[str]]:
    """Send `count` forging requests of each kind; the markers of each kind."""
    port = service.ports["wagate"]
    markers: dict[str, list[str]] = {"path": [], "header": [], "body": [], "form": []}
    for i in range(count):
        marker = _marker("path", i)
        markers["path"].append(marker)
        path = "/admin/registrations/" + quote(marker + FORGED, safe="")
        await _raw(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode())

        marker = _marker("header", i)
        markers["header"].append(marker)
        # HTTP's parser refuses control bytes in a header (a 400 logged without
        # them): what gets through is the non-ASCII separators, NEL and U+2028/9.
        value = (marker + re.sub("[\x00-\x1f\x7f]", " ", FORGED)).encode()
        await _raw(port, b"GET /v3/account HTTP/1.1\r\nHost: x\r\nX-WM-CLIENT-ID: " + value
                   + b"\r\nX-WM-CLIENT-SECRET: wrong\r\n", source=_address(i))

        marker = _marker("body", i)
        markers["body"].append(marker)
        body = json.dumps({"instance": SANDBOX_INSTANCE, "from": "+34600000009",
                           "text": "hello", "id": marker + FORGED.replace("\x00", "")}).encode()
        auth = f"Authorization: {ADMIN['Authorization']}\r\n".encode()
        for _ in range(2):  # logged as it comes, then as the duplicate it is
            await _raw(port, b"POST /sandbox/inbound HTTP/1.1\r\nHost: x\r\n" + auth
                       + b"Content-Type: application/json\r\n", body)

        marker = _marker("form", i)
        markers["form"].append(marker)
        await _portal_login(service, marker + FORGED, _address(count + i))
    return markers


async def _portal_login(service: Service, client_id: str, source: str) -> None:
    async with aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(local_addr=(source, 0))) as session:
        async with session.get(service.url("wagate", "/portal/login")) as page:
            found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert found is not None, "the portal's login page has no CSRF token"
        async with session.post(service.url("wagate", "/portal/login"), data={
                "csrf": found.group(1), "client_id": client_id, "secret": "wrong"}) as resp:
            await resp.read()


# Lines each marker makes: the sandbox's message is logged when it comes in and
# again, as a duplicate, when it comes a second time.
LINES_PER_EVENT = {"path": 1, "header": 1, "body": 2, "form": 1}


def judge(log: str, markers: dict[str, list[str]]) -> list[Row]:
    lines = log.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = []
    for kind, kind_markers in markers.items():
        counts = [sum(marker in line for line in lines) for marker in kind_markers]
        exact = sum(c == LINES_PER_EVENT[kind] for c in counts)
        odd = "" if exact == len(counts) else f" (lines per marker {sorted(set(counts))})"
        rows.append(Row(suite=SUITE, measure=f"control characters in a {kind}: one line per "
                                             "logged event",
                        figure=f"{exact} of {len(kind_markers)}{odd}",
                        target="all", met=exact == len(kind_markers)))
    foreign = [line for line in lines if not RECORD_START.match(line)]
    forged = [line for line in lines if line.startswith(FORGED_START)]
    raw = RAW_CONTROL.findall(log)
    return [
        *rows,
        Row(suite=SUITE, measure="log lines that do not start as one of the service's records",
            figure=f"{len(foreign)} of {len(lines):,}"
                   + (f"; first: {foreign[0][:80]!r}" if foreign else ""),
            target="0", met=not foreign),
        Row(suite=SUITE, measure="forged lines (starting with the forged timestamp)",
            figure=str(len(forged)), target="0", met=not forged),
        Row(suite=SUITE, measure="raw control characters in the log file",
            figure=f"{len(raw)}" + (f" (first {raw[0]!r})" if raw else ""), target="0",
            met=not raw),
    ]


async def run(small: bool, workdir: Path) -> list[Row]:
    count = 20 if small else 300
    service = LoggingService(tmp=workdir, quick=small)
    await asyncio.to_thread(service.start_all)
    try:
        markers = await forge(service, count)
    finally:
        await asyncio.to_thread(service.stop_all)
    log = (workdir / "wagate.log").read_bytes().decode("utf-8", "backslashreplace")
    return [Row(suite=SUITE, measure="forging requests sent (path, header, body, form)",
                figure=f"{count} of each, {5 * count:,} requests"), *judge(log, markers)]
