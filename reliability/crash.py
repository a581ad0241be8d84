"""The crash suite: SIGKILL the real service under load, restart it on the same
store, and count what was lost and what arrived twice.

The service (`python -m bot serve`) runs the meta provider against a
Graph-shaped server and forwards to an enterprise subscriber's standard
webhook, both local peers in processes of their own (bench/servers.py) that
log everything they accept. The load is open-loop and mixed, every item
unique so it can be traced: signed Meta texts from registered users, sends
through the WhatsMate API, and greetings from new users. Meanwhile the
service is killed at random moments and started again at once. After a final
restart and a bounded drain, each acknowledged (HTTP 200) item must have
arrived: the text at the webhook receiver, the send at Graph, the greeting's
confirmation at Graph. Duplicates at either end are counted and reported.

`exercise` is the suite whatever the service's shape; `run` is its SQLite
form (one process, killed whole), reliability/crash_pg.py its PostgreSQL
form (`serve --workers 2`, one process of the group killed at a time).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import CLIENT_ID, CLIENT_SECRET, Bench, get_json, meta_body, sign
from reliability.common import Row, free_port

SUITE = "crash"
GRAPH_DELAY = 0.05  # seconds Graph takes to answer (a near region): sends are in flight
PROVIDER_CALLS = 64  # the outbound worker's provider calls at once (bot/workers/outbound.py)


@dataclass(frozen=True, slots=True)
class Form:
    kills: int
    uptime: tuple[float, float]  # seconds the service runs between kills (uniform)
    texts_per_second: float
    sends_per_second: float
    greetings_per_second: float
    users: int  # registered before the load, the texts' senders and the sends' recipients
    drain: float  # the final drain's bound, seconds
    graph_delay: float = GRAPH_DELAY  # seconds Graph takes to answer each send


FULL = Form(kills=20, uptime=(2.0, 6.0), texts_per_second=150, sends_per_second=80,
            greetings_per_second=10, users=100, drain=60.0)
SMALL = Form(kills=2, uptime=(2.0, 4.0), texts_per_second=150, sends_per_second=80,
             greetings_per_second=10, users=20, drain=15.0)


@dataclass
class Acked:
    """What the service acknowledged with a 200, and when."""

    texts: dict[str, float] = field(default_factory=dict)  # "meta:<wamid>" -> at
    sends: dict[str, float] = field(default_factory=dict)  # unique text -> at
    greetings: dict[str, float] = field(default_factory=dict)  # new user's number -> at
    refused: int = 0  # not acknowledged (the service was down, or the answer lost)


def start(bench: Bench, graph_delay: float) -> None:
    """The peers (Graph, receiver), each in a process of its own, then the service."""
    for name, extra in (("graph", [str(graph_delay)]), ("receiver", [])):
        bench.start(name, [sys.executable, "-m", "bench.servers", name,
                           str(bench.ports[name]), *extra], bench.url(name, "/count"))
    bench.start_wagate(rate=1000)


def restart(bench: Bench) -> str:
    """SIGKILL the service (no shutdown of any kind) and start it on the same store."""
    bench.stop("wagate", signal.SIGKILL)
    bench.start_wagate(rate=1000)
    return "the service"


# One kill: SIGKILL something of the service, have it running again, and say what.
Kill = Callable[[Bench], str]


def peer_log(bench: Bench, name: str) -> list[list[Any]]:
    """Everything a peer logged (bench/servers.py), read in parts."""
    entries: list[list[Any]] = []
    while True:
        part = get_json(bench.url(name, f"/log?since={len(entries)}"))
        entries += part["entries"]
        if len(entries) >= part["total"] or not part["entries"]:
            return entries


class Load:
    """Open-loop mixed load: each kind at its own fixed rate, every item unique."""

    def __init__(self, bench: Bench, form: Form, users: list[str]) -> None:
        self.bench = bench
        self.form = form
        self.users = users
        self.acked = Acked()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(
            self._stream(self.form.texts_per_second, lambda i: self._text(session, i)),
            self._stream(self.form.sends_per_second, lambda i: self._send(session, i)),
            self._stream(self.form.greetings_per_second, lambda i: self._greet(session, i)))
        if self.tasks:
            await asyncio.wait(self.tasks)

    async def _stream(self, rate: float, make: Callable[[int], Any]) -> None:
        start = time.perf_counter()
        i = 0
        while not self.stopping.is_set():
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(make(i))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            i += 1

    async def _post(self, session: aiohttp.ClientSession, path: str, body: bytes,
                    headers: dict[str, str]) -> bool:
        try:
            async with session.post(self.bench.url("wagate", path), data=body, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=10)) as resp:
                await resp.read()
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _text(self, session: aiohttp.ClientSession, i: int) -> None:
        msg_id = f"wamid.CRASHT{i}"
        body = meta_body(self.users[i % len(self.users)], f"question {i}?", msg_id)
        if await self._post(session, "/webhooks/meta", body, {"X-Hub-Signature-256": sign(body)}):
            self.acked.texts[f"meta:{msg_id}"] = time.time()
        else:
            self.acked.refused += 1

    async def _send(self, session: aiohttp.ClientSession, i: int) -> None:
        text = f"crash send {i}"
        body = json.dumps({"number": f"+{self.users[i % len(self.users)]}",
                           "message": text}).encode()
        headers = {"X-WM-CLIENT-ID": CLIENT_ID, "X-WM-CLIENT-SECRET": CLIENT_SECRET,
                   "Content-Type": "application/json"}
        if await self._post(session, "/v3/whatsapp/single/text/message/1", body, headers):
            self.acked.sends[text] = time.time()
        else:
            self.acked.refused += 1

    async def _greet(self, session: aiohttp.ClientSession, i: int) -> None:
        number = f"3462{i:07d}"
        msg_id = f"wamid.CRASHG{i}"
        body = meta_body(number, "Hola", msg_id)
        if await self._post(session, "/webhooks/meta", body, {"X-Hub-Signature-256": sign(body)}):
            self.acked.greetings[f"+{number}"] = time.time()
            self.acked.texts[f"meta:{msg_id}"] = time.time()  # forwarded like any message
        else:
            self.acked.refused += 1


async def register(bench: Bench, session: aiohttp.ClientSession, users: list[str]) -> None:
    for i, user in enumerate(users):
        body = meta_body(user, "Hi", f"wamid.CRASHREG{i}")
        async with session.post(bench.url("wagate", "/webhooks/meta"), data=body,
                                headers={"X-Hub-Signature-256": sign(body)}) as resp:
            if resp.status != 200:
                raise RuntimeError(f"registering {user}: HTTP {resp.status}")


async def kill_loop(bench: Bench, form: Form, rng: random.Random, kill: Kill) -> Counter[str]:
    """Kill at a random moment of each up-time (and have it running again): what
    was killed, counted."""
    killed: Counter[str] = Counter()
    for _ in range(form.kills):
        await asyncio.sleep(rng.uniform(*form.uptime))
        killed[await asyncio.to_thread(kill, bench)] += 1
    return killed


@dataclass
class Arrivals:
    """What the peers logged, first arrival and count per traced item."""

    graph: dict[tuple[str, str], list[float]]  # (to, text) -> times
    hooks: dict[str, list[tuple[str, float]]]  # message id -> [(webhook-id, at)]

    @classmethod
    def read(cls, bench: Bench, hook_log: list[list[Any]] | None = None) -> Arrivals:
        """From the peers' logs; `hook_log` (webhook-id, event type, subject,
        at) when the webhook is not the receiver peer (a broker)."""
        graph: dict[tuple[str, str], list[float]] = defaultdict(list)
        for to, text, at in peer_log(bench, "graph"):
            graph[("+" + to.lstrip("+"), text)].append(at)  # Graph's `to` has no "+"
        hooks: dict[str, list[tuple[str, float]]] = defaultdict(list)
        if hook_log is None:
            hook_log = peer_log(bench, "receiver")
        for webhook_id, kind, subject, at in hook_log:
            if kind == "message.received":
                hooks[subject].append((webhook_id, at))
        return cls(graph, hooks)

    def sent_texts(self) -> dict[str, list[float]]:
        return {text: times for (_, text), times in self.graph.items()
                if text.startswith("crash send ")}

    def to_numbers(self) -> dict[str, list[tuple[str, float]]]:
        out: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for (to, text), times in self.graph.items():
            out[to] += [(text, at) for at in times]
        return out


def missing(acked: Acked, arrivals: Arrivals) -> tuple[int, int, int]:
    sends = arrivals.sent_texts()
    to = arrivals.to_numbers()
    return (sum(1 for mid in acked.texts if mid not in arrivals.hooks),
            sum(1 for text in acked.sends if text not in sends),
            sum(1 for number in acked.greetings if number not in to))


def percentiles(values: list[float]) -> str:
    if not values:
        return "none arrived"
    values = sorted(values)
    p50 = statistics.median(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"p50 {p50 * 1000:.0f} ms / p99 {p99 * 1000:.0f} ms (n={len(values)})"


def rows(suite: str, form: Form, killed: Counter[str], acked: Acked, arrivals: Arrivals,
         drained: float) -> list[Row]:
    lost_texts, lost_sends, lost_regs = missing(acked, arrivals)
    sends = arrivals.sent_texts()
    graph_dups = sum(len(times) - 1 for times in sends.values())
    # A confirmation comes twice when a new user gets the same text more than once.
    to = arrivals.to_numbers()
    conf_dups = sum(n - 1 for number in acked.greetings
                    for n in Counter(text for text, _ in to.get(number, [])).values())
    hook_dups = sum(len(got) - 1 for got in arrivals.hooks.values())
    two_ids = sum(1 for got in arrivals.hooks.values() if len({wid for wid, _ in got}) > 1)
    bound = PROVIDER_CALLS * form.kills
    inbound_lag = [arrivals.hooks[mid][0][1] - at for mid, at in acked.texts.items()
                   if mid in arrivals.hooks]
    send_lag = [sends[text][0] - at for text, at in acked.sends.items() if text in sends]

    def row(measure: str, figure: str, target: str = "", met: bool = True) -> Row:
        return Row(suite=suite, measure=measure, figure=figure, target=target, met=met)

    return [
        row("SIGKILLs under load, each followed by a restart on the same store",
            ", ".join(f"{what} ×{n}" for what, n in sorted(killed.items()))),
        row("acknowledged: inbound texts / sends / greetings",
            f"{len(acked.texts)} / {len(acked.sends)} / {len(acked.greetings)} "
            f"({acked.refused} refused while down)"),
        row("final drain after the last restart", f"{drained:.1f} s "
            f"(bound {form.drain:.0f} s)"),
        row("acknowledged inbound messages never at the webhook", str(lost_texts), "0",
            lost_texts == 0),
        row("acknowledged sends never handed to Graph", str(lost_sends), "0", lost_sends == 0),
        row("registrations never confirmed at Graph", str(lost_regs), "0", lost_regs == 0),
        row("sends and confirmations Graph received twice (or more)",
            f"{graph_dups + conf_dups} ({(graph_dups + conf_dups) / form.kills:.1f} per kill)",
            f"≤ {PROVIDER_CALLS} per kill (calls in flight)",
            graph_dups + conf_dups <= bound),
        row("messages the webhook received twice (or more)",
            f"{hook_dups} ({hook_dups / form.kills:.1f} per kill)"),
        row("messages delivered under two different webhook-ids", str(two_ids), "0",
            two_ids == 0),
        row("inbound -> webhook latency during the load", percentiles(inbound_lag)),
        row("send -> Graph latency during the load", percentiles(send_lag)),
    ]


# Reads what a webhook that is not the receiver peer got so far (a broker):
# (webhook-id, event type, subject, at) entries, all of them at each call.
HookLog = Callable[[], Awaitable[list[list[Any]]]]


async def exercise(bench: Bench, suite: str, form: Form, kill: Kill,
                   hook_log: HookLog | None = None) -> list[Row]:
    """The suite on `bench`'s service (its store and process shape): the load,
    the kills, the final drain, the count. Shared by every form of the suite."""

    async def arrived() -> Arrivals:
        log = None if hook_log is None else await hook_log()
        return await asyncio.to_thread(Arrivals.read, bench, log)

    rng = random.Random(20261201)
    for name in ("graph", "receiver", "wagate"):
        bench.ports[name] = free_port()
    users = [f"3463{i:07d}" for i in range(form.users)]
    try:
        await asyncio.to_thread(start, bench, form.graph_delay)
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            await register(bench, session, users)
            load = Load(bench, form, users)
            loading = asyncio.create_task(load.run(session))
            try:
                killed = await kill_loop(bench, form, rng, kill)
                await asyncio.sleep(form.uptime[0])  # load on the last start too
            finally:
                load.stopping.set()
                await loading
        t0 = time.perf_counter()
        while True:  # the final drain: until everything acknowledged arrived, bounded
            arrivals = await arrived()
            if not any(missing(load.acked, arrivals)) or \
                    time.perf_counter() - t0 > form.drain:
                break
            await asyncio.sleep(0.5)
        drained = time.perf_counter() - t0
        stopped = await asyncio.to_thread(bench.stop, "wagate")
        arrivals = await arrived()
    finally:
        for name in list(bench.procs):
            await asyncio.to_thread(bench.stop, name)
    return [*rows(suite, form, killed, load.acked, arrivals, drained),
            Row(suite=suite, measure="exit status of the service's SIGTERM after the drain",
                figure=str(stopped), target="0", met=stopped == 0)]


async def run(small: bool, workdir: Path) -> list[Row]:
    """One `wagate serve` on a SQLite file, killed whole and started again."""
    return await exercise(Bench(tmp=workdir, quick=small), SUITE, SMALL if small else FULL,
                          restart)


def main(suite: str = SUITE,
         run_suite: Callable[[bool, Path], Awaitable[list[Row]]] = run) -> None:
    """`python -m reliability.<suite> [--small]`: one crash suite alone."""
    import argparse
    import tempfile

    from reliability.common import table

    parser = argparse.ArgumentParser(prog=f"python -m reliability.{suite}")
    parser.add_argument("--small", action="store_true", help="the form `make test` runs")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix=f"wagate-{suite}-"))
    print(table(asyncio.run(run_suite(args.small, workdir))))
    print(f"\nlogs in {workdir}")


if __name__ == "__main__":
    main()
