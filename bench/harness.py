"""What every benchmark (and the reliability suites) share: the service and
its companions started as processes, the signed Meta bodies, wrk, and the
readings of /proc. A leaf of bench/: it imports no other bench module."""


import asyncio
import gc
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP_SECRET = "bench-app-secret"
PNID = "100000000000001"
PNID_QUIET = "100000000000002"  # a shared number no subscriber forwards from: (b)
CLIENT_ID = "bench@example.com"
CLIENT_SECRET = "bench-secret"
WEBHOOK_SECRET = "whsec_" + "YmVuY2gtd2ViaG9vay1zZWNyZXQtMDEyMzQ1Njc4OQ=="
ADMIN_TOKEN = "bench-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk not found: installing Debian's package (apt-get install wrk)", flush=True)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    path = shutil.which("wrk")
    if not path:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is required for the benchmark")
    return path


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def row(self) -> str:
        return f"{self.rps:9.0f} req/s  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:7.2f} ms"


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        return float("nan")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, env: dict[str, str], duration: int, connections: int,
            threads: int = 2) -> WrkResult:
    cmd = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
           "-s", str(ROOT / "bench" / "lua" / "bodies.lua"), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, **env, "BENCH_THREADS": str(threads)})
    out = proc.stdout
    if proc.returncode != 0 or "Requests/sec" not in out or "99%" not in out:
        raise RuntimeError(f"wrk failed on {url}:\n{out}\n{proc.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return WrkResult(rps, p50, p99, total, errors)


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def meta_body(sender: str, text: str, msg_id: str, pnid: str = PNID,
              image: str | None = None) -> bytes:
    """Meta's webhook for one text, or (`image`: its media id) one photo with `text`
    as its caption."""
    message: dict[str, Any] = {"from": sender, "id": msg_id, "timestamp": str(int(time.time()))}
    if image is None:
        message.update(type="text", text={"body": text})
    else:
        message.update(type="image", image={"id": image, "mime_type": "image/jpeg",
                                            "caption": text})
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": pnid},
            "contacts": [{"profile": {"name": "Bench"}, "wa_id": sender}],
            "messages": [message]}}]}]}
    return json.dumps(payload, separators=(",", ":")).encode()


def write_bodies(path: Path, lines: list[tuple[str, bytes]]) -> None:
    with path.open("wb") as fh:
        for header, body in lines:
            fh.write(header.encode() + b"\t" + body + b"\n")


@dataclass
class Bench:
    tmp: Path
    quick: bool
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    storage_url: str = ""  # `[storage] url`; empty: a SQLite file in `tmp`
    workers: int = 0  # `serve --workers N` (a supervisor and its children); 0: a lone serve
    cpus: str = ""  # taskset's CPU list for the service (its children inherit it); "": any
    cgroup: str = ""  # a cgroup the service starts in (its children are born there); "": ours
    webhook_url: str = ""  # the subscriber's webhook; empty: the receiver's /hook

    @property
    def duration(self) -> int:
        return 4 if self.quick else 10

    def start(self, name: str, args: list[str], health: str) -> None:
        with (self.tmp / f"{name}.log").open("wb") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(args, cwd=ROOT, stdout=log,
                                                stderr=subprocess.STDOUT)
        wait_http(health)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        """Signal the process and wait for it (killed after 30 s): its exit status."""
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def url(self, name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def config(self, rate: float = 80.0) -> Path:
        text = textwrap.dedent(f"""
            [server]
            host = "127.0.0.1"
            port = {self.ports['wagate']}
            [storage]
            url = "{self.storage_url or f'sqlite:///{self.tmp / "wagate.db"}'}"
            [admin]
            token = "{ADMIN_TOKEN}"
            [locales]
            dir = "{ROOT / 'locales'}"
            [meta]
            app_secret = "{APP_SECRET}"
            verify_token = "bench-verify"
            access_token = "bench-access"
            graph_base_url = "{self.url('graph')}"
            [outbound]
            rate_per_second = {rate}
            [webhooks]
            allow_private_networks = ["127.0.0.0/8"]
            [plans.bench]
            messages_per_day = 1000000000
            max_recipients = 10000000
            inbound_webhooks = true
            [[instances]]
            id = 1
            number = "+15550001111"
            provider = "meta"
            phone_number_id = "{PNID}"
            owner = "bench"
            [[instances]]
            id = 9
            number = "+15550009999"
            provider = "meta"
            phone_number_id = "{PNID_QUIET}"
            [[subscribers]]
            id = "bench"
            client_id = "{CLIENT_ID}"
            secret = "{CLIENT_SECRET}"
            plan = "bench"
            instances = [1]
            [[subscribers.webhooks]]
            url = "{self.webhook_url or self.url('receiver', '/hook')}"
            format = "standard"
            secret = "{WEBHOOK_SECRET}"
        """)
        path = self.tmp / "wagate.toml"
        path.write_text(text)
        return path

    def start_wagate(self, rate: float = 80.0) -> int:
        """The service; its pid (the supervisor's under `workers`)."""
        config = self.config(rate)
        pinned = ["taskset", "-c", self.cpus] if self.cpus else []
        # The shell joins the cgroup, then becomes the service: it starts there.
        joined = (["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup]
                  if self.cgroup else [])
        group = ["--workers", str(self.workers)] if self.workers else []
        self.start("wagate", [*joined, *pinned, sys.executable, "-m", "bot", "serve", "--config",
                              str(config), "--log-level", "WARNING", *group],
                   self.url("wagate", "/readyz"))
        return self.procs["wagate"].pid


def register_users(bench: Bench, senders: list[str]) -> None:
    async def go() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            sem = asyncio.Semaphore(32)

            async def one(i: int, sender: str) -> None:
                body = meta_body(sender, "Hi", f"wamid.REG{i}")
                async with sem, session.post(bench.url("wagate", "/webhooks/meta"), data=body,
                                             headers={"X-Hub-Signature-256": sign(body)}) as r:
                    assert r.status == 200, await r.text()
            await asyncio.gather(*(one(i, s) for i, s in enumerate(senders)))
    asyncio.run(go())


def drained(bench: Bench) -> bool:
    """The service's queues are empty: what the load caused was done."""
    return (metric(bench, "wagate_outbound_queue_depth") == 0
            and metric(bench, "wagate_webhook_queue_depth") == 0)


def warm_up(bench: Bench, path: str, bodies: Path, env: dict[str, str] | None = None) -> None:
    """A second of a job's load on `path` (its requests from `bodies`, with ids and
    new users of their own), drained, before the job is measured: what a
    service does once (its processes started, a store's connections opened,
    its statements prepared and planned) is not a job's cost."""
    run_wrk(bench.url("wagate", path), {"BENCH_BODIES": str(bodies), **(env or {})}, 1, 32)
    wait_until(lambda: drained(bench), 120)


def metric(bench: Bench, name: str) -> float:
    req = urllib.request.Request(bench.url("wagate", "/metrics"))
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{name} ([\d.e+-]+)$", text, re.M)
    if found is None:
        raise RuntimeError(f"{name} is missing from /metrics")
    return float(found.group(1))


def wait_deliveries_drained(bench: Bench, timeout: float = 180.0) -> float:
    """Wait until the deliveries queued by the runs before are sent, so the
    fixed-rate run starts from steady state: its own deliveries, and nothing
    left over, are what the service sends meanwhile. Returns the seconds waited."""
    t0 = time.perf_counter()
    if not wait_until(lambda: metric(bench, "wagate_webhook_queue_depth") == 0, timeout):
        print(f"  note: deliveries still queued after {timeout:.0f} s; measuring anyway")
    return time.perf_counter() - t0


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.25)
    return True


def open_loop(bench: Bench, rate: float, seconds: float,
              tag: str) -> list[tuple[str, float, float]]:
    """POST (a) at a fixed rate, open loop (like wrk2): each request goes at its
    time whatever the answers before it. (message id, answered at (epoch
    seconds), latency in ms) for each request answered 200."""
    async def go() -> list[tuple[str, float, float]]:
        import aiohttp

        users = [f"3460{i:07d}" for i in range(500)]
        bodies = []
        for i in range(int(rate * seconds)):
            msg_id = f"wamid.{tag}{i}"
            body = meta_body(users[i % len(users)], f"fixed rate {tag} {i}", msg_id)
            bodies.append((msg_id, body, sign(body)))
        answered: list[tuple[str, float, float]] = []
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one(msg_id: str, body: bytes, sig: str) -> None:
                t0 = time.perf_counter()
                async with session.post(bench.url("wagate", "/webhooks/meta"), data=body,
                                        headers={"X-Hub-Signature-256": sig}) as r:
                    await r.read()
                if r.status == 200:
                    answered.append((f"meta:{msg_id}", time.time(),
                                     (time.perf_counter() - t0) * 1000))
            # The load generator's own collector must not pause the clock.
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                tasks = []
                for i, (msg_id, body, sig) in enumerate(bodies):
                    delay = start + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one(msg_id, body, sig)))
                await asyncio.gather(*tasks)
            finally:
                gc.enable()
        return answered
    return asyncio.run(go())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def fixed_rate_latency(bench: Bench, rate: int = 1000, seconds: int = 5) -> dict[str, float]:
    """p50/p99 of (a) at a fixed 1,000 requests/s."""
    lat = [ms for _, _, ms in open_loop(bench, rate, seconds, "F")]
    result = {"rate": rate, "p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99)}
    print(f"(a) at {rate} req/s: p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms",
          flush=True)
    return result


def webhook_lag(bench: Bench, rate: float, seconds: float, tag: str) -> dict[str, float]:
    """Inbound -> webhook lag of (a) at a fixed rate: from each text's 200 to its
    arrival at the receiver, with the worst `wagate_webhook_queue_oldest_age_seconds`
    /metrics showed meanwhile (sampled each second)."""
    wait_deliveries_drained(bench)
    log_from = get_json(bench.url("receiver", "/log?since=1000000000"))["total"]
    oldest = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            oldest[0] = max(oldest[0], metric(bench, "wagate_webhook_queue_oldest_age_seconds"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        answered = open_loop(bench, rate, seconds, tag)
        arrived: dict[str, float] = {}

        def all_arrived() -> bool:
            while True:
                part = get_json(bench.url("receiver", f"/log?since={log_from + len(seen)}"))
                seen.extend(part["entries"])
                if not part["entries"]:
                    break
            for _, kind, subject, at in seen:
                if kind == "message.received":
                    arrived.setdefault(subject, at)
            return all(msg_id in arrived for msg_id, _, _ in answered)

        seen: list[list[Any]] = []
        complete = wait_until(all_arrived, 120)
    finally:
        done.set()
        sampler.join()
    lags = [arrived[msg_id] - at for msg_id, at, _ in answered if msg_id in arrived]
    result = {"rate": rate, "answered": len(answered), "arrived": len(lags),
              "p50_s": percentile(lags, 0.5), "p99_s": percentile(lags, 0.99),
              "max_s": max(lags, default=float("nan")), "oldest_age_max_s": oldest[0]}
    print(f"    inbound -> webhook at {rate:.0f} req/s: p50 {result['p50_s']:.3f} s  "
          f"p99 {result['p99_s']:.3f} s  max {result['max_s']:.3f} s; oldest due delivery in "
          f"/metrics at most {oldest[0]:.2f} s"
          + ("" if complete else f" ({len(answered) - len(lags)} still not arrived)"),
          flush=True)
    return result


def lag_runs(bench: Bench) -> dict[str, dict[str, float]]:
    """(g) inbound -> webhook lag under sustained load at half and at all of the
    capacity (a) measured: p99 under 1 s at half; bounded (all arrive, the
    oldest-age gauge stays small) at full."""
    capacity = bench.results["cpu"]["a"]["sqlite"]["rps"]
    seconds = 5 if bench.quick else 10
    print(f"(g) sustained (a) for {seconds} s, capacity {capacity:.0f} req/s:", flush=True)
    return {"half": webhook_lag(bench, capacity / 2, seconds, "H"),
            "full": webhook_lag(bench, capacity, seconds, "L")}


def prefill_outbound(db: Path, count: int, to: str) -> None:
    from bot.effects import OutboundDraft
    from bot.store import SqliteStore

    async def go() -> None:
        store = await SqliteStore.open(str(db))
        try:
            now = time.time()
            for start in range(0, count, 5000):
                drafts = [OutboundDraft(instance_id=1, to=to, text=f"drain {i}",
                                        subscriber_id="bench")
                          for i in range(start, min(count, start + 5000))]
                await store.enqueue(drafts, now)
        finally:
            await store.close()
    asyncio.run(go())


def drain_outbound(bench: Bench, count: int) -> dict[str, float]:
    bench.stop("wagate")
    prefill_outbound(bench.tmp / "wagate.db", count, "+34600000001")
    before = get_json(bench.url("graph", "/count"))["count"]
    t0 = time.perf_counter()
    pid = bench.start_wagate(rate=1_000_000)
    meter = DrainMeter(pid)
    while True:
        done = get_json(bench.url("graph", "/count"))["count"] - before
        meter.saw(done)
        if done >= count:
            break
        if time.perf_counter() - t0 > 300:
            raise RuntimeError(f"outbound drain stalled at {done}/{count}")
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    result = {"messages": count, "seconds": elapsed, "per_second": count / elapsed,
              "peak_rss_mb": peak_rss_mb(pid), "cpu_us": meter.cpu_us()}
    print(f"(e) outbound drain: {count} in {elapsed:.1f} s = {count / elapsed:.0f} msg/s, "
          f"{result['cpu_us']:.0f} µs CPU/message (peak RSS {result['peak_rss_mb']:.0f} MB)",
          flush=True)
    return result


class DrainMeter:
    """The service's CPU per message of a drain, counted from the first
    arrival on (not the start-up's imports and migrations)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def saw(self, done: int) -> None:
        if done > 0:
            sample = (cpu_seconds(self.pid), done)
            self.first = self.first or sample
            self.last = sample

    def cpu_us(self) -> float:
        if self.first is None or self.last is None or self.last[1] == self.first[1]:
            return float("nan")
        return (self.last[0] - self.first[0]) * 1e6 / (self.last[1] - self.first[1])


TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> tuple[int, list[str]]:
    """(parent pid, the fields after the command name) of /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), fields


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """utime + stime; with `reaped`, plus those of the children it waited for."""
    _, fields = proc_stat(pid)
    return sum(int(f) for f in fields[11:15 if reaped else 13]) / TICKS
