"""Forgery: the real service refuses every forged Meta webhook and every send
with wrong credentials, and stores or forwards nothing for them.

The service runs as a subprocess on the meta provider (reliability/service.py):
the meta number is owned by the subscriber `bench`, so any message it accepted
would be stored, forwarded to its webhook (a local receiver that counts) and,
for a stranger, answered with a hint through the local Graph server (which
counts too). Each forged request carries a unique marker text.
After the volley the admin API, the outbound queue and both counters must be as
they were; then one correctly signed message and one correct send must show up
in the same places, so the check can fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import (
    ADMIN_TOKEN,
    APP_SECRET,
    CLIENT_ID,
    CLIENT_SECRET,
    WEBHOOK_SECRET,
    meta_body,
    sign,
)
from reliability.common import Row
from reliability.service import (
    ADMIN,
    CLIENT,
    META_INSTANCE,
    OTHER_ID,
    OTHER_SECRET,
    SANDBOX_INSTANCE,
    Service,
    get_json,
    settle,
)

SUITE = "forgery"
CONCURRENCY = 32
REGISTERED = "34600000001"  # says Hi (correctly signed) before the volley
SIG = "X-Hub-Signature-256"
FORGER = "127.0.0.2"  # where the forged requests come from
ANSWER_TIMEOUT = aiohttp.ClientTimeout(total=30)

# A forged signature: (kind, the status the service documents, headers for a body).
Forge = tuple[str, int, Callable[[bytes], dict[str, str]]]


def _hex(body: bytes, key: str = APP_SECRET) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def _other_body(body: bytes) -> bytes:
    return body.replace(b"forged", b"FORGED", 1)


WEBHOOK_FORGES: list[Forge] = [
    ("missing", 401, lambda b: {}),
    ("empty", 401, lambda b: {SIG: ""}),
    ("legacy X-Hub-Signature (sha1) only", 401, lambda b: {
        "X-Hub-Signature": "sha1=" + hmac.new(APP_SECRET.encode(), b, hashlib.sha1).hexdigest()}),
    ("random hex", 403, lambda b: {SIG: "sha256=" + secrets.token_hex(32)}),
    ("wrong secret", 403, lambda b: {SIG: "sha256=" + _hex(b, "not-the-app-secret")}),
    ("secret less its last character", 403, lambda b: {SIG: "sha256=" + _hex(b, APP_SECRET[:-1])}),
    ("signature of another body", 403, lambda b: {SIG: sign(_other_body(b))}),
    ("signature of the empty body", 403, lambda b: {SIG: sign(b"")}),
    ("truncated by one", 403, lambda b: {SIG: sign(b)[:-1]}),
    ("truncated to half", 403, lambda b: {SIG: sign(b)[:39]}),
    ("one character more", 403, lambda b: {SIG: sign(b) + "0"}),
    ("no prefix", 403, lambda b: {SIG: _hex(b)}),
    ("sha1= prefix", 403, lambda b: {SIG: "sha1=" + _hex(b)}),
    ("upper-case prefix", 403, lambda b: {SIG: "SHA256=" + _hex(b)}),
    ("upper-case hex", 403, lambda b: {SIG: "sha256=" + _hex(b).upper()}),
    ("non-hex", 403, lambda b: {SIG: "sha256=" + "zq" * 32}),
    ("prefix only", 403, lambda b: {SIG: "sha256="}),
    ("space after the prefix", 403, lambda b: {SIG: "sha256= " + _hex(b)}),
    ("the app secret itself", 403, lambda b: {SIG: "sha256=" + APP_SECRET}),
    ("unkeyed sha256 of the body", 403, lambda b: {SIG: "sha256=" + hashlib.sha256(b)
                                                   .hexdigest()}),
    ("two signatures", 403, lambda b: {SIG: sign(b) + "," + sign(b)}),
]

SEND_FORGES: list[tuple[str, int, dict[str, str]]] = [
    ("both headers missing", 401, {}),
    ("secret missing", 401, {"X-WM-CLIENT-ID": CLIENT_ID}),
    ("client id missing", 401, {"X-WM-CLIENT-SECRET": CLIENT_SECRET}),
    ("empty secret", 401, {"X-WM-CLIENT-ID": CLIENT_ID, "X-WM-CLIENT-SECRET": ""}),
    ("secret as a bearer token", 401, {"Authorization": f"Bearer {CLIENT_SECRET}"}),
    ("wrong secret", 474, {"X-WM-CLIENT-ID": CLIENT_ID,
                           "X-WM-CLIENT-SECRET": "wrong-" + secrets.token_hex(8)}),
    ("unknown client id", 474, {"X-WM-CLIENT-ID": "nobody@example.com",
                                "X-WM-CLIENT-SECRET": CLIENT_SECRET}),
    ("client id in other case", 474, {"X-WM-CLIENT-ID": CLIENT_ID.upper(),
                                      "X-WM-CLIENT-SECRET": CLIENT_SECRET}),
    ("another subscriber's secret", 474, {"X-WM-CLIENT-ID": CLIENT_ID,
                                          "X-WM-CLIENT-SECRET": OTHER_SECRET}),
    ("another subscriber's id", 474, {"X-WM-CLIENT-ID": OTHER_ID,
                                      "X-WM-CLIENT-SECRET": CLIENT_SECRET}),
    ("sha256 of the secret", 474, {"X-WM-CLIENT-ID": CLIENT_ID, "X-WM-CLIENT-SECRET":
                                   hashlib.sha256(CLIENT_SECRET.encode()).hexdigest()}),
    ("secret upper-cased", 474, {"X-WM-CLIENT-ID": CLIENT_ID,
                                 "X-WM-CLIENT-SECRET": CLIENT_SECRET.upper()}),
    ("secret less its last character", 474, {"X-WM-CLIENT-ID": CLIENT_ID,
                                              "X-WM-CLIENT-SECRET": CLIENT_SECRET[:-1]}),
    ("secret and one character more", 474, {"X-WM-CLIENT-ID": CLIENT_ID,
                                            "X-WM-CLIENT-SECRET": CLIENT_SECRET + "0"}),
    ("id and secret swapped", 474, {"X-WM-CLIENT-ID": CLIENT_SECRET,
                                    "X-WM-CLIENT-SECRET": CLIENT_ID}),
    ("the admin token as secret", 474, {"X-WM-CLIENT-ID": CLIENT_ID,
                                        "X-WM-CLIENT-SECRET": ADMIN_TOKEN}),
    ("the webhook secret as secret", 474, {"X-WM-CLIENT-ID": CLIENT_ID,
                                           "X-WM-CLIENT-SECRET": WEBHOOK_SECRET}),
]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the service stored and forwarded, as an operator would look it up."""

    inbound: list[str]       # texts of the inbound message log (newest 1000)
    outbound: list[str]      # texts of the outbound message log
    registrations: int
    deliveries: int
    outbound_queue: int      # every queued or sent outbound row (the sandbox outbox API)
    graph_sends: int
    webhook_posts: int

    def marked(self, marker: str) -> int:
        return sum(marker in (t or "") for t in (*self.inbound, *self.outbound))


async def snapshot(session: aiohttp.ClientSession, service: Service) -> Snapshot:
    def url(path: str) -> str:
        return service.url("wagate", path)

    async def texts(direction: str) -> list[str]:
        body = await get_json(session, url(f"/admin/messages?direction={direction}&limit=1000"),
                              ADMIN)
        return [m["text"] for m in body["messages"]]

    regs = await get_json(session, url("/admin/registrations?limit=1000"), ADMIN)
    deliveries = await get_json(session, url("/admin/deliveries?limit=1000"), ADMIN)
    outbox = await get_json(session, url("/sandbox/outbox?limit=1000"), ADMIN)
    return Snapshot(
        inbound=await texts("in"), outbound=await texts("out"),
        registrations=len(regs["registrations"]), deliveries=len(deliveries["deliveries"]),
        outbound_queue=len(outbox["messages"]),
        graph_sends=(await get_json(session, service.url("graph", "/count")))["count"],
        webhook_posts=(await get_json(session, service.url("receiver", "/count")))["count"])


@dataclass
class Tally:
    """Answers to one kind of forged request."""

    sent: int = 0
    accepted: int = 0       # any 2xx
    as_documented: int = 0  # the documented status with the JSON error shape
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: str = ""    # the first answer that was not as documented

    def record(self, kind: str, expected: int, status: int, body: bytes) -> None:
        self.sent += 1
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.accepted += 1
        # Past 10 wrong credentials a minute, the guessing address is told to wait.
        if (status == expected or (expected == 474 and status == 429)) and _error_shape(body):
            self.as_documented += 1
        elif not self.unexpected:
            self.unexpected = f"{kind!r} got {status} {body[:120]!r}"

    def breakdown(self) -> str:
        return ", ".join(f"{s or 'no answer'} ×{n:,}" for s, n in sorted(self.statuses.items()))


def _error_shape(body: bytes) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return (isinstance(parsed, dict) and isinstance(parsed.get("error"), str)
            and isinstance(parsed.get("error_message"), str))


async def bounded(jobs: Iterable[Any], work: Callable[[Any], Awaitable[None]],
                  concurrency: int = CONCURRENCY) -> None:
    """Run `work` over `jobs`, at most `concurrency` at a time."""
    pending = iter(jobs)

    async def worker() -> None:
        for job in pending:
            await work(job)
    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def post(session: aiohttp.ClientSession, url: str, body: bytes,
               headers: dict[str, str]) -> tuple[int, bytes]:
    """(status, body); status 0 when no answer came (reset, timeout)."""
    try:
        async with session.post(url, data=body, headers=headers,
                                timeout=ANSWER_TIMEOUT) as resp:
            return resp.status, await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 0, repr(exc).encode()


async def forge_webhooks(session: aiohttp.ClientSession, service: Service, count: int,
                         marker: str) -> Tally:
    tally = Tally()
    url = service.url("wagate", "/webhooks/meta")

    async def one(i: int) -> None:
        kind, expected, headers_for = WEBHOOK_FORGES[i % len(WEBHOOK_FORGES)]
        # Half from the registered user, half from numbers that never wrote.
        sender = REGISTERED if i % 2 else f"3471{i:07d}"
        text = f"{marker} forged webhook {i} {uuid.uuid4().hex}"
        body = meta_body(sender, text, f"wamid.FORGED{i}")
        status, answer = await post(session, url, body, {
            "Content-Type": "application/json", **headers_for(body)})
        tally.record(kind, expected, status, answer)
    await bounded(range(count), one)
    return tally


async def forge_sends(session: aiohttp.ClientSession, service: Service, count: int,
                      marker: str) -> Tally:
    tally = Tally()
    targets = [
        (f"/v3/whatsapp/single/text/message/{META_INSTANCE}", "number", "message"),
        (f"/v3/whatsapp/single/text/message/{SANDBOX_INSTANCE}", "number", "message"),
        (f"/v3/whatsapp/single/url/message/{META_INSTANCE}", "number", "url"),
        (f"/v3/whatsapp/group/text/message/{SANDBOX_INSTANCE}", "group_name", "message"),
    ]

    async def one(i: int) -> None:
        kind, expected, headers = SEND_FORGES[i % len(SEND_FORGES)]
        path, to_field, content_field = targets[(i // len(SEND_FORGES)) % len(targets)]
        text = f"{marker} forged send {i} {uuid.uuid4().hex}"
        content = f"https://example.com/{text.replace(' ', '-')}" if content_field == "url" \
            else text
        to = "Team" if to_field == "group_name" else f"+{REGISTERED}"
        body = json.dumps({to_field: to, content_field: content}).encode()
        status, answer = await post(session, service.url("wagate", path), body,
                                    {"Content-Type": "application/json", **headers})
        tally.record(kind, expected, status, answer)
    await bounded(range(count), one)
    return tally


async def control(session: aiohttp.ClientSession, service: Service,
                  before: Snapshot) -> tuple[bool, str]:
    """One correctly signed message and one correct send, seen where the forged ones
    were looked for: the check would have caught an accepted forgery."""
    marker = f"control-{uuid.uuid4().hex}"
    body = meta_body(REGISTERED, f"{marker} hello", f"wamid.{marker}")
    inbound = await post(session, service.url("wagate", "/webhooks/meta"), body,
                         {"Content-Type": "application/json", SIG: sign(body)})
    send = await post(session, service.url("wagate",
                                            f"/v3/whatsapp/single/text/message/{META_INSTANCE}"),
                      json.dumps({"number": f"+{REGISTERED}", "message": f"{marker} reply"})
                      .encode(), {"Content-Type": "application/json", **CLIENT})
    await settle(session, service)
    after = await snapshot(session, service)
    seen = {
        "webhook 200": inbound[0] == 200, "send 200": send[0] == 200,
        "stored": after.marked(marker) == 2,
        # the message's message.received, and the send's message.status sent
        "deliveries recorded": after.deliveries == before.deliveries + 2,
        "webhook POSTs": after.webhook_posts == before.webhook_posts + 2,
        "Graph send": after.graph_sends == before.graph_sends + 1,
    }
    missing = [name for name, ok in seen.items() if not ok]
    figure = ("stored, forwarded to the webhook; send queued, sent to Graph" if not missing
              else "missing: " + ", ".join(missing))
    return not missing, figure


async def run(small: bool, workdir: Path) -> list[Row]:
    service = Service(tmp=workdir, quick=small)
    await asyncio.to_thread(service.start_all)
    try:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        # The forgeries come from an address of their own: the control's correct
        # send, from the usual one, must not be throttled by their failures.
        forging = aiohttp.TCPConnector(limit=CONCURRENCY, local_addr=(FORGER, 0))
        async with aiohttp.ClientSession(connector=connector) as session, \
                aiohttp.ClientSession(connector=forging) as forger:
            return await _volley(session, forger, service, small)
    finally:
        await asyncio.to_thread(service.stop_all)


async def _volley(session: aiohttp.ClientSession, forger: aiohttp.ClientSession,
                  service: Service, small: bool) -> list[Row]:
    hooks, sends = (300, 100) if small else (10_000, 2_000)
    # The registered user, and one real message whose status forged lookups could ask.
    body = meta_body(REGISTERED, "Hi", "wamid.REGISTER")
    status, answer = await post(session, service.url("wagate", "/webhooks/meta"), body,
                                {"Content-Type": "application/json", SIG: sign(body)})
    if status != 200:
        raise RuntimeError(f"registering {REGISTERED} failed: {status} {answer[:200]!r}")
    await settle(session, service)
    before = await snapshot(session, service)

    marker = f"forged-{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    hook_tally, send_tally = await asyncio.gather(
        forge_webhooks(forger, service, hooks, marker),
        forge_sends(forger, service, sends, marker))
    elapsed = time.perf_counter() - started
    await settle(session, service)
    after = await snapshot(session, service)

    stored = (after.marked(marker), after.registrations - before.registrations,
              after.deliveries - before.deliveries)
    forwarded = (after.graph_sends - before.graph_sends,
                 after.outbound_queue - before.outbound_queue,
                 after.webhook_posts - before.webhook_posts)
    control_ok, control_figure = await control(session, service, after)

    def documented(tally: Tally, statuses: str) -> Row:
        figure = f"{tally.as_documented:,} of {tally.sent:,} ({tally.breakdown()})"
        if tally.unexpected:
            figure += f"; first other: {tally.unexpected}"
        return Row(suite=SUITE, measure=f"answered {statuses} with the JSON error",
                   figure=figure, target="all", met=tally.as_documented == tally.sent)

    return [
        Row(suite=SUITE, measure=f"forged Meta webhooks accepted ({len(WEBHOOK_FORGES)} kinds)",
            figure=f"{hook_tally.accepted:,} of {hook_tally.sent:,}", target="0",
            met=hook_tally.accepted == 0 and hook_tally.sent == hooks),
        documented(hook_tally, "401 missing / 403 wrong"),
        Row(suite=SUITE, measure=f"wrong-credential sends accepted ({len(SEND_FORGES)} kinds)",
            figure=f"{send_tally.accepted:,} of {send_tally.sent:,}", target="0",
            met=send_tally.accepted == 0 and send_tally.sent == sends),
        documented(send_tally, "401 missing / 474 wrong (429 once throttled)"),
        Row(suite=SUITE, measure="stored: marked messages, registrations, deliveries",
            figure=", ".join(map(str, stored)), target="0, 0, 0", met=stored == (0, 0, 0)),
        Row(suite=SUITE, measure="forwarded: Graph sends, queued sends, webhook POSTs",
            figure=", ".join(map(str, forwarded)), target="0, 0, 0",
            met=forwarded == (0, 0, 0)),
        Row(suite=SUITE, measure="control: one signed message, one correct send",
            figure=control_figure, target="stored and forwarded", met=control_ok),
        Row(suite=SUITE, measure="forged requests answered per second",
            figure=f"{(hooks + sends) / elapsed:,.0f}/s ({hooks + sends:,} in {elapsed:.1f} s)"),
    ]
