"""CPU per job: (a), (b) and (c) on SQLite and on PostgreSQL, each beside the
two references measured in the same run.

A job is counted when its effect arrived at the peer, so the drain is part of
it: (a) a registered user's signed text at the webhook receiver, (m) the same
with a photo, at the receiver once the photo was fetched from the Graph-shaped
server and its link is in the webhook, (b) a new
user's signed "Hi" as its confirmation at the Graph-shaped server (on a
number no subscriber forwards from, so the job is the greeting alone), (c) a
WhatsMate send-text request as the message at the Graph-shaped server
(pacing lifted). CPU is utime + stime of every process of the service (a
lone `wagate serve`), read from /proc before wrk starts and after the queues
are empty, ÷ jobs. Each mode runs on a fresh store (a new SQLite file, a new
PostgreSQL database dropped after).

The references are read the same way, ÷ requests answered: `bare` (read,
verify the signature or secret, parse the JSON, 200) and `forward` (bare
plus one POST of the body to the receiver, its forwards finished).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    PNID_QUIET,
    TICKS,
    Bench,
    drained,
    get_json,
    meta_body,
    peak_rss_mb,
    register_users,
    run_wrk,
    sign,
    wait_until,
    warm_up,
    write_bodies,
)
from bench.scaling import (
    cpu_seconds,
    create_database,
    database_counts,
    database_url,
    drop_database,
    group_processes,
    postgres_cpu,
    proc_stat,
    server_url,
    service_cpu,
    transactions,
)

USERS = [f"3467{i:07d}" for i in range(500)]  # registered before (a) and (c)
SEND_PATH = "/v3/whatsapp/single/text/message/1"
SEND_ENV = {"BENCH_HEADER": "X-WM-CLIENT-SECRET", "BENCH_EXTRA_NAME": "X-WM-CLIENT-ID",
            "BENCH_EXTRA_VALUE": CLIENT_ID}


@dataclass(frozen=True, slots=True)
class Job:
    key: str
    what: str
    path: str
    bodies: str
    peer: str  # where a done job arrives: graph | receiver
    env: dict[str, str]


JOBS = (
    Job("a", "(a) registered user's text -> webhook receiver", "/webhooks/meta", "cpu_a.txt",
        "receiver", {}),
    Job("b", "(b) new user's Hi -> registered -> confirmation at Graph", "/webhooks/meta",
        "cpu_b.txt", "graph", {}),
    Job("c", "(c) WhatsMate send-text -> message at Graph", SEND_PATH, "cpu_c.txt", "graph",
        SEND_ENV),
    Job("m", "(m) registered user's photo -> fetched -> webhook with its media link",
        "/webhooks/meta", "cpu_m.txt", "receiver", {}),
)


def write_job_bodies(tmp: Path, count: int) -> None:
    """Each job's requests, and its warm-up's (`warm_up`): the same requests with
    ids (and, for (b), new users) of their own."""
    for warm, prefix, users, n in (("", "C", "3468", count),
                                   ("_warm", "W", "3469", count // 10)):
        write_bodies(tmp / f"cpu_a{warm}.txt", [(sign(body), body) for body in (
            meta_body(USERS[i % len(USERS)], f"order {i} status?", f"wamid.{prefix}A{i}")
            for i in range(n))])
        write_bodies(tmp / f"cpu_b{warm}.txt", [(sign(body), body) for body in (
            meta_body(f"{users}{i:07d}", "Hi", f"wamid.{prefix}B{i}", pnid=PNID_QUIET)
            for i in range(n))])
        write_bodies(tmp / f"cpu_m{warm}.txt", [(sign(body), body) for body in (
            meta_body(USERS[i % len(USERS)], f"receipt {i}", f"wamid.{prefix}M{i}",
                      image=f"{(8000000 if warm else 9000000) + i}")
            for i in range(n))])
        send = json.dumps({"number": f"+{USERS[0]}", "message": "Your order has shipped (y)"})
        write_bodies(tmp / f"cpu_c{warm}.txt", [(CLIENT_SECRET, send.encode())])


def reference(bench: Bench, name: str, job: Job) -> dict[str, float]:
    """CPU µs per request of a reference server on the job's requests."""
    pid = bench.procs[name].pid
    cpu0 = cpu_seconds(pid)
    load = run_wrk(bench.url(name, job.path), {"BENCH_BODIES": str(bench.tmp / job.bodies),
                                                **job.env}, bench.duration, 32)
    if name == "forward":
        wait_until(lambda: get_json(bench.url("forward", "/pending"))["pending"] == 0, 60)
    answered = load.requests - load.errors
    return {"rps": load.rps, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
            "requests": answered,
            "cpu_us": (cpu_seconds(pid) - cpu0) * 1e6 / max(answered, 1)}


def system_seconds(supervisor: int) -> float:
    """Kernel CPU seconds so far of the service's processes (stime)."""
    pids = [supervisor, *group_processes(supervisor)]
    return sum(int(proc_stat(pid)[1][12]) for pid in pids) / TICKS


def measure(bench: Bench, job: Job) -> dict[str, Any]:
    """wrk on the job's path, then the drain: CPU per job, throughput, latency."""
    service = bench.procs["wagate"].pid
    before = get_json(bench.url(job.peer, "/count"))["count"]
    db0 = database_counts(bench.storage_url) if bench.storage_url else None
    postmaster = db0.postmaster if db0 else None
    cpu0, pg0 = sum(service_cpu(service).values()), postgres_cpu(postmaster)
    t0 = time.perf_counter()
    sys0 = system_seconds(service)
    load = run_wrk(bench.url("wagate", job.path), {"BENCH_BODIES": str(bench.tmp / job.bodies),
                                                    **job.env}, bench.duration, 32)
    done = wait_until(lambda: drained(bench), 300)
    elapsed = time.perf_counter() - t0
    cpu1, pg1 = sum(service_cpu(service).values()), postgres_cpu(postmaster)
    kernel = system_seconds(service) - sys0
    jobs = get_json(bench.url(job.peer, "/count"))["count"] - before
    result: dict[str, Any] = {
        "jobs": jobs, "answered": load.requests - load.errors, "errors": load.errors,
        "rps": load.rps, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
        "jobs_per_second": jobs / elapsed, "drained": done,
        "cpu_us": (cpu1 - cpu0) * 1e6 / max(jobs, 1),
        "kernel_share": kernel / (cpu1 - cpu0) if cpu1 > cpu0 else 0.0,
        "peak_rss_mb": peak_rss_mb(service)}
    if db0 is not None:
        time.sleep(1.5)  # the server's statistics catch up
        counts = database_counts(bench.storage_url).per_job(db0, jobs)
        result["postgres_cpu_us"] = (pg1 - pg0) * 1e6 / max(jobs, 1)
        result["transactions"] = counts["transactions"]
        result["statements"] = counts["statements"]
        result["wal_bytes"] = counts["wal_bytes"]
    return result


def run_job(main: Bench, backend: str, job: Job) -> dict[str, Any]:
    """One job on a fresh store of `backend`."""
    tmp = main.tmp / f"cpu_{backend}_{job.key}"
    tmp.mkdir()
    database = None
    if backend == "postgres":
        database = asyncio.run(create_database(server_url(), "wagate_bench"))
    bench = Bench(tmp=tmp, quick=main.quick, ports=dict(main.ports),
                  storage_url=database_url(server_url(), database) if database else "")
    try:
        bench.start_wagate(rate=1_000_000)
        if job.key in "acm":
            register_users(bench, USERS)
            wait_until(lambda: drained(bench), 120)
        bench.tmp = main.tmp  # the bodies
        warm_up(bench, job.path, bench.tmp / job.bodies.replace(".txt", "_warm.txt"), job.env)
        return measure(bench, job)
    finally:
        for name in list(bench.procs):
            bench.stop(name)
        if database:
            asyncio.run(drop_database(server_url(), database))


def backends() -> list[str]:
    import asyncpg

    try:
        transactions(server_url())
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(f"CPU per job on PostgreSQL: SKIPPED, no PostgreSQL at {server_url()} ({exc}); "
              "set WAGATE_TEST_POSTGRES_URL", flush=True)
        return ["sqlite"]
    return ["sqlite", "postgres"]


def run_cpu(bench: Bench, only: str = "abcm", store: str = "both") -> None:
    write_job_bodies(bench.tmp, 60_000 if bench.quick else 150_000)
    results: dict[str, Any] = {}
    names = [name for name in backends() if store in (name, "both")]
    for job in JOBS:
        if job.key not in only:
            continue
        row = results[job.key] = {"bare": reference(bench, "bare", job),
                                  "forward": reference(bench, "forward", job)}
        print(f"{job.what}\n    bare    {row['bare']['cpu_us']:7.0f} µs/request  "
              f"({row['bare']['rps']:,.0f}/s)\n    forward {row['forward']['cpu_us']:7.0f} "
              f"µs/request  ({row['forward']['rps']:,.0f}/s)", flush=True)
        for backend in names:
            r = row[backend] = run_job(bench, backend, job)
            extra = ""
            if "transactions" in r:
                extra = (f"; PostgreSQL server {r['postgres_cpu_us']:,.0f} µs/job, "
                         f"{r['transactions']:.1f} transactions/job, "
                         f"{r['wal_bytes']:,.0f} WAL bytes/job")
                if r["statements"] is not None:
                    extra += f", {r['statements']:.1f} statements/job"
            print(f"    wagate {backend:8} {r['cpu_us']:7.0f} µs/job, kernel "
                  f"{100 * r['kernel_share']:.0f} %  ({r['jobs']:,} jobs, "
                  f"{r['jobs_per_second']:,.0f}/s drain included; answered {r['rps']:,.0f}/s, "
                  f"p50 {r['p50_ms']:.1f} / p99 {r['p99_ms']:.1f} ms){extra}", flush=True)
    bench.results["cpu"] = results


TARGETS = {"a": "≤ 2× forward", "b": "≤ 400 µs", "c": "≤ 2× forward", "m": "—"}


def met(key: str, r: dict[str, Any], forward: float) -> bool | None:
    if key == "m":
        return None  # no target: it is measured beside (a), the same message with a file
    return r["cpu_us"] <= (400 if key == "b" else 2 * forward)


def _verdict(met: bool | None) -> str:
    return "—" if met is None else "yes" if met else "no"


def summary(results: dict[str, Any]) -> str:
    rows = ["| job | bare µs/request | forward µs/request | store | wagate CPU µs/job "
            "(drain included) | jobs/s | answered/s, p50 / p99 | target | met |",
            "|---|---|---|---|---|---|---|---|---|"]
    for job in JOBS:
        if job.key not in results:
            continue
        row = results[job.key]
        forward = row["forward"]["cpu_us"]
        for backend in ("sqlite", "postgres"):
            if backend not in row:
                continue
            r = row[backend]
            pg = (f" (+ PostgreSQL server {r['postgres_cpu_us']:,.0f})"
                  if "postgres_cpu_us" in r else "")
            rows.append(
                f"| {job.what} | {row['bare']['cpu_us']:,.0f} | {forward:,.0f} | {backend} | "
                f"**{r['cpu_us']:,.0f}**{pg} | {r['jobs_per_second']:,.0f} | "
                f"{r['rps']:,.0f}/s, {r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms | "
                f"{TARGETS[job.key]} | {_verdict(met(job.key, r, forward))} |")
    return "\n".join(rows)
