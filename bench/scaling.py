"""PostgreSQL and several processes: (b) the greeting job and (a) a registered
user's text, each in four modes on a fresh store: SQLite with one process,
PostgreSQL with `--workers 1`, and with `--workers 2` twice: loaded by the
same 32 clients as one process (split between the two), and by 64, as many
per process as one process had (SQLite allows one process).

A job is done when its effect arrived: (b) the registration's confirmation at
the Graph-shaped server, (a) the text at the webhook receiver. wrk loads the
path for the run's duration; then the queues drain. Throughput is jobs done ÷
the seconds from wrk's start to the drained queues; CPU per job is the CPU
the service's processes (the supervisor and every child, read from
/proc/<pid>/stat) spent in that same time, ÷ jobs done, drain included. The
PostgreSQL server's CPU (all its processes) is reported beside it.

Two ways to give the service its cores. With a CPU quota (`--quota CPUS`,
0.4 by default, bench/quota.py), each process of the service is capped at
CPUS by a cgroup of its own and the service at CPUS × its processes, as if
each had a (slower) core of its own, leaving the rest of the machine to the
PostgreSQL server, wrk and the peers; how much CPU each of those used
meanwhile, the idle time and how often the quota throttled are reported
beside. Without (`--quota 0`, or when no cgroup is writable: said loudly),
pinning (taskset, inherited by the children): one process gets core 0, two
processes get both cores, wrk, the peers and PostgreSQL are not pinned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.harness import (
    Bench,
    cpu_seconds,
    drained,
    get_json,
    meta_body,
    proc_stat,
    register_users,
    run_wrk,
    sign,
    wait_until,
    warm_up,
    write_bodies,
)
from bench.quota import (
    Hierarchy,
    ServiceQuota,
    Throttling,
    idle_seconds,
    load_average,
    pids,
    usable_hierarchy,
)

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
USERS = [f"3465{i:07d}" for i in range(500)]  # registered before (a)
# "The same total service CPU per job" of 2 processes and 1, within this.
SAME = 0.10
CLIENTS = 32  # wrk's connections, for one process
JOBS = {"b": ("(b) greeting: new user's Hi -> registered -> confirmation at Graph", "graph"),
        "a": ("(a) registered user's text -> webhook receiver", "receiver")}


@dataclass(frozen=True, slots=True)
class Mode:
    backend: str  # sqlite | postgres
    workers: int  # `serve --workers N`: N children, each answering and draining
    cpus: str  # taskset's list for the service
    connections: int = CLIENTS  # wrk's, kept open for the run

    @property
    def name(self) -> str:
        return (f"{'SQLite' if self.backend == 'sqlite' else 'PostgreSQL'}, {self.workers} proc"
                + ("" if self.connections == CLIENTS else f", {self.connections} clients"))

    @property
    def same_load_per_process(self) -> bool:
        """As many clients per process as one process alone has: twice the
        traffic for two, which is what a second process is added for."""
        return self.connections == CLIENTS * self.workers


# Two processes twice: with the one process's clients split between them (a
# process's group-commit batches are as large as the requests it has waiting:
# half), and with as many per process as one had, which the target is judged on.
MODES = (Mode("sqlite", 1, "0"), Mode("postgres", 1, "0"), Mode("postgres", 2, "0,1"),
         Mode("postgres", 2, "0,1", 2 * CLIENTS))


def server_url() -> str:
    return os.environ.get("WAGATE_TEST_POSTGRES_URL", DEFAULT_SERVER_URL)


def database_url(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


async def create_database(server: str, prefix: str) -> str:
    """A fresh database on `server`: its name."""
    import asyncpg

    name = f"{prefix}_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(server, timeout=5)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return name


async def drop_database(server: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server, timeout=5)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


def group_processes(supervisor: int) -> set[int]:
    """The live children of `supervisor`."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, fields = proc_stat(int(entry.name))
        except OSError:  # gone meanwhile
            continue
        if ppid == supervisor and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def service_cpu(supervisor: int) -> dict[str, float]:
    """CPU seconds so far of the service: the supervisor's, and its children's
    (each answering requests and draining the queues)."""
    return {"supervisor": cpu_seconds(supervisor),
            "children": sum(cpu_seconds(pid) for pid in group_processes(supervisor))}


def postgres_cpu(postmaster: int | None = None) -> float:
    """CPU seconds so far of the PostgreSQL server whose postmaster is `postmaster`
    (its backends and helpers; a backend that exits has its CPU moved into the
    postmaster's reaped children's time). Without it, or when that server is
    not on this machine, of every `postgres` process here (others' sessions
    included: the machine is shared)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != "postgres":
                    continue
                pid = int(entry.name)
                if postmaster is None or pid == postmaster or proc_stat(pid)[0] == postmaster:
                    total += cpu_seconds(pid, reaped=True)
            except OSError:
                continue
    return total


def write_job_bodies(tmp: Path, count: int) -> None:
    """Each job's requests, and its warm-up's (ids and new users of their own)."""
    for warm, prefix, users, n in (("", "S", "3466", count), ("_warm", "W", "3465", count // 10)):
        write_bodies(tmp / f"scaling_b{warm}.txt", [
            (sign(body), body) for body in (meta_body(f"{users}{i:07d}", "Hi",
                                                      f"wamid.{prefix}B{i}") for i in range(n))])
        write_bodies(tmp / f"scaling_a{warm}.txt", [
            (sign(body), body) for body in (meta_body(USERS[i % len(USERS)], f"status {i}?",
                                                      f"wamid.{prefix}A{i}") for i in range(n))])


@dataclass(frozen=True, slots=True)
class DatabaseCounts:
    """What the server counted so far: the database's transactions (committed
    or rolled back, from pg_stat_database, published within a second or so),
    its statements (pg_stat_statements, when the server loads it; else None),
    the WAL written by the whole server (bytes) and the postmaster's pid when
    it runs on this machine (to read the server's own CPU)."""

    transactions: int
    statements: int | None
    wal_bytes: int
    postmaster: int | None

    def per_job(self, before: DatabaseCounts, jobs: int) -> dict[str, float | None]:
        jobs = max(jobs, 1)
        return {"transactions": (self.transactions - before.transactions) / jobs,
                "statements": None if self.statements is None or before.statements is None
                else (self.statements - before.statements) / jobs,
                "wal_bytes": (self.wal_bytes - before.wal_bytes) / jobs}


def postmaster_of(backend: int) -> int | None:
    """The postmaster of a live backend's pid, when it runs on this machine."""
    try:
        parent, _ = proc_stat(backend)
        return parent if Path(f"/proc/{parent}/comm").read_text().strip() == "postgres" else None
    except OSError:  # the server is on another machine
        return None


def database_counts(url: str) -> DatabaseCounts:
    import asyncpg

    async def read() -> DatabaseCounts:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            xacts, wal, backend = await conn.fetchrow(
                "SELECT xact_commit + xact_rollback, pg_current_wal_lsn() - '0/0'::pg_lsn,"
                " pg_backend_pid() FROM pg_stat_database WHERE datname = current_database()")
            postmaster = postmaster_of(backend)  # while the backend lives
            statements = None
            if await conn.fetchval("SELECT 'pg_stat_statements' = ANY(string_to_array("
                                   "current_setting('shared_preload_libraries'), ', '))"):
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                statements = int(await conn.fetchval(
                    "SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements s"
                    " JOIN pg_database d ON d.oid = s.dbid"
                    " WHERE d.datname = current_database()"))
        finally:
            await conn.close()
        return DatabaseCounts(int(xacts), statements, int(wal), postmaster)
    return asyncio.run(read())


def transactions(url: str) -> int:
    return database_counts(url).transactions


def others_cpu(peers: list[int]) -> dict[str, float]:
    """CPU seconds so far of what shares the machine with the service: the peers,
    wrk (this process's reaped children: wrk alone within a run), this process
    and the idle time of all cores."""
    children, me = (resource.getrusage(who) for who in (resource.RUSAGE_CHILDREN,
                                                        resource.RUSAGE_SELF))
    return {"peers": sum(cpu_seconds(pid) for pid in peers),
            "wrk": children.ru_utime + children.ru_stime, "bench": me.ru_utime + me.ru_stime,
            "idle": idle_seconds()}


def cores_used(service: float, server: float, before: dict[str, float],
               after: dict[str, float], seconds: float) -> dict[str, float]:
    """How many of the machine's cores each part used on average over `seconds`;
    "others" is what none of them used and was not idle (other sessions)."""
    used = {"service": service / seconds, "postgres": server / seconds,
            **{name: (after[name] - before[name]) / seconds for name in before}}
    used["others"] = (os.cpu_count() or 1) - sum(used.values())
    return used


def one_job(bench: Bench, key: str, bodies: Path, peers: list[int],
            quota: ServiceQuota | None, connections: int = CLIENTS) -> dict[str, Any]:
    """wrk on the job's path (`connections` open), then the drain: throughput
    and CPU per job."""
    _, peer = JOBS[key]
    supervisor = bench.procs["wagate"].pid
    with contextlib.ExitStack() as stack:
        if quota is not None:
            stack.enter_context(quota.kept_placed(lambda: group_processes(supervisor)))
        before_count = get_json(bench.url(peer, "/count"))["count"]
        db0 = database_counts(bench.storage_url) if bench.storage_url else None
        postmaster = db0.postmaster if db0 else None

        def server_cpu() -> float:  # on SQLite, no server of the run's to count
            return postgres_cpu(postmaster) if db0 else 0.0

        throttled0 = quota.throttling() if quota else {}
        load_at_start = load_average()
        others0 = others_cpu(peers)
        cpu0, pg0, t0 = service_cpu(supervisor), server_cpu(), time.perf_counter()
        load = run_wrk(bench.url("wagate", "/webhooks/meta"),
                       {"BENCH_BODIES": str(bodies / f"scaling_{key}.txt")},
                       bench.duration, connections)
        done = wait_until(lambda: drained(bench), 300)
        elapsed = time.perf_counter() - t0
        cpu1, pg1, others1 = service_cpu(supervisor), server_cpu(), others_cpu(peers)
        throttled = {name: t.since(throttled0[name])
                     for name, t in (quota.throttling() if quota else {}).items()}
    jobs = get_json(bench.url(peer, "/count"))["count"] - before_count
    by_role = {role: (cpu1[role] - cpu0[role]) * 1e6 / max(jobs, 1) for role in cpu0}
    counts: dict[str, float | None] = {"transactions": None}
    if db0 is not None:
        time.sleep(1.5)  # the server's statistics catch up
        counts = database_counts(bench.storage_url).per_job(db0, jobs)
    result = {"transactions_per_job": counts["transactions"], "database": counts, "jobs": jobs,
              "answered_per_second": load.rps, "errors": load.errors,
              "seconds": elapsed, "per_second": jobs / elapsed, "drained": done,
              "cpu_us_per_job": sum(by_role.values()), "cpu_us_by_role": by_role,
              "postgres_cpu_us_per_job": (pg1 - pg0) * 1e6 / max(jobs, 1),
              "load_average": load_at_start,
              "cores": cores_used(sum(cpu1.values()) - sum(cpu0.values()), pg1 - pg0,
                                  others0, others1, elapsed)}
    if quota is not None:
        # A child still in supervisor/ was born there (restarted) and never moved.
        unplaced = pids(quota.supervisor) - {supervisor}
        result["quota"] = {"throttled": {name: {"periods": t.periods, "throttled": t.throttled,
                                                "seconds": t.seconds}
                                         for name, t in throttled.items()},
                           "restarts_placed": quota.moves - len(quota.leaves),
                           "lost": sorted(quota.lost | unplaced)}
    return result


def run_mode(main: Bench, mode: Mode, key: str, server: str,
             quota: tuple[Hierarchy, float] | None) -> dict[str, Any]:
    """One job kind in one mode, on a store of its own; under `quota` (where and
    how much CPU per process), each process in a cgroup of its own."""
    tmp = main.tmp / f"{mode.backend}{mode.workers}{key}{mode.connections}"
    tmp.mkdir()
    groups = ServiceQuota(quota[0], quota[1], mode.workers, mode.workers) if quota else None
    with contextlib.ExitStack() as stack:  # the cgroups go last, the service stopped
        if groups is not None:
            stack.enter_context(groups)
        database = None
        if mode.backend == "postgres":
            database = asyncio.run(create_database(server, "wagate_bench"))
        bench = Bench(tmp=tmp, quick=main.quick, ports=dict(main.ports), workers=mode.workers,
                      cpus="" if groups else mode.cpus,
                      cgroup=str(groups.supervisor) if groups else "",
                      storage_url=database_url(server, database) if database else "")
        try:
            pid = bench.start_wagate(rate=1_000_000)
            if groups is not None and not wait_until(
                    lambda: groups.settled(group_processes(pid)), 30):
                raise RuntimeError(f"the service's {mode.workers} children are not each in a "
                                   f"cgroup of their own after 30 s")
            if key == "a":
                register_users(bench, USERS)
                wait_until(lambda: drained(bench), 120)
            # Every process started and warm: (b) was once measured from the
            # first answer, the drainers still starting.
            warm_up(bench, "/webhooks/meta", main.tmp / f"scaling_{key}_warm.txt")
            return one_job(bench, key, main.tmp,
                           [proc.pid for proc in main.procs.values()], groups,
                           mode.connections)
        finally:
            for name in list(bench.procs):
                bench.stop(name)
            if database:
                asyncio.run(drop_database(server, database))


def choose_quota(cpus: float) -> tuple[Hierarchy, float] | None:
    """Where to set a quota of `cpus` per process; None (said loudly) when nowhere."""
    if cpus <= 0:
        return None
    found = usable_hierarchy()
    if isinstance(found, Hierarchy):
        return found, cpus
    print(f"{'!' * 78}\nNO CPU QUOTA: {found}.\nFalling back to pinning with taskset: on 2 "
          f"cores the ratio of 2 processes to 1 then measures the machine, not the service's "
          f"scaling.\n{'!' * 78}", flush=True)
    return None


def run_scaling(bench: Bench, quota_cpus: float = 0.0) -> None:
    import asyncpg

    server = server_url()
    try:
        transactions(server)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL and several processes: SKIPPED, no PostgreSQL at {server} ({exc}); "
              "set WAGATE_TEST_POSTGRES_URL", flush=True)
        bench.results["scaling"] = {}
        return
    quota = choose_quota(quota_cpus)
    write_job_bodies(bench.tmp, 30_000 if bench.quick else 80_000)
    results: dict[str, dict[str, Any]] = {"method": {
        "quota_cpus": quota[1] if quota else None,
        "cgroup": f"v{quota[0].version} at {quota[0].root}" if quota else None}}
    print("PostgreSQL and several processes (" + (
        f"each service process capped at {quota[1]:g} CPU, the service at {quota[1]:g} × its "
        f"processes, by cgroup v{quota[0].version} quotas; not pinned" if quota else
        "service pinned: 1 process core 0, 2 processes cores 0-1") + "):", flush=True)
    for key, (what, _) in JOBS.items():
        for mode in MODES:
            r = results.setdefault(key, {})[mode.name] = run_mode(bench, mode, key, server,
                                                                  quota)
            roles = ", ".join(f"{role} {us:,.0f}" for role, us in r["cpu_us_by_role"].items())
            print(f"  {what} | {mode.name}: {r['jobs']} jobs in {r['seconds']:.1f} s = "
                  f"{r['per_second']:,.0f}/s (answered {r['answered_per_second']:,.0f}/s); "
                  f"service CPU {r['cpu_us_per_job']:,.0f} µs/job ({roles}); PostgreSQL "
                  f"server {r['postgres_cpu_us_per_job']:,.0f} µs/job"
                  + (f", {r['transactions_per_job']:.1f} transactions/job"
                     if r["transactions_per_job"] is not None else ""), flush=True)
            print(f"    cores used: {cores_row(r)}; load average {r['load_average']}"
                  + (f"; throttled: {throttled_row(r)}" if "quota" in r else ""), flush=True)
    bench.results["scaling"] = results


def cores_row(r: dict[str, Any]) -> str:
    return ", ".join(f"{name} {cores:.2f}" for name, cores in r["cores"].items())


def throttled_row(r: dict[str, Any]) -> str:
    """How often each group's quota ran out, and for how long its processes waited;
    a lost child (restarted and never moved into a group of its own) is said."""
    quota = r["quota"]
    parts = [f"{name} {t.share:.0%} of {t.periods} periods ({t.seconds:.1f} s)"
             for name, t in ((name, Throttling(**v)) for name, v in quota["throttled"].items())]
    if quota["restarts_placed"]:
        parts.append(f"{quota['restarts_placed']} restarted children placed")
    if quota["lost"]:
        parts.append(f"LOST: children {quota['lost']} ran outside a cgroup of their own")
    return ", ".join(parts)


def projected_ratio(one: dict[str, Any], two: dict[str, Any]) -> float:
    """2 processes ÷ 1 where each process has a core: the two share the
    requests, and the work they queue, evenly."""
    each = two["cpu_us_by_role"]["children"] / 2
    return one["cpu_us_per_job"] / each if each else 0.0


def summary(results: dict[str, dict[str, Any]]) -> str:
    if not results:
        return "PostgreSQL and several processes: not measured (no PostgreSQL server)"
    quota = results["method"]["quota_cpus"]
    rows = ["| job | mode | jobs/s (drain included) | service CPU µs/job (supervisor / "
            "children) | PostgreSQL server µs/job | target | met |",
            "|---|---|---|---|---|---|---|"]
    for key, (what, _) in JOBS.items():
        runs = results[key]
        sqlite, one, two = (runs[m.name] for m in MODES[:3])
        for mode in MODES:
            r = runs[mode.name]
            by = r["cpu_us_by_role"]
            target, met = "", ""
            if key == "b" and mode.backend == "postgres" and mode.workers == 1:
                ratio = r["cpu_us_per_job"] / sqlite["cpu_us_per_job"]
                target, met = f"≤ 1.3× SQLite's (is {ratio:.2f}×)", "yes" if ratio <= 1.3 else "no"
            if mode.workers == 2 and quota:
                measured = r["per_second"] / one["per_second"]
                change = r["cpu_us_per_job"] / one["cpu_us_per_job"] - 1
                bound = Throttling(**one["quota"]["throttled"]["child1"]).share
                target = (f"≥ 1.6× 1 proc at {quota:g} CPU per process, service CPU per job "
                          f"the same (±{SAME:.0%}): {measured:.2f}×, CPU per job {change:+.0%} "
                          f"(1 proc throttled in {bound:.0%} of periods: CPU-bound at the quota)")
                met = ("yes" if measured >= 1.6 and abs(change) <= SAME else "no"
                       ) if mode.same_load_per_process else "reported (its clients split)"
            elif mode.workers == 2:
                measured = r["per_second"] / one["per_second"]
                projected = projected_ratio(one, two)
                target = (f"≥ 1.6× 1 proc with a core each (measured {measured:.2f}×, "
                          f"projected {projected:.2f}×)")
                met = ("yes" if measured >= 1.6 else "no (see text)"
                       ) if mode.same_load_per_process else "reported (its clients split)"
            rows.append(f"| {what} | {mode.name} | {r['per_second']:,.0f} | "
                        f"{r['cpu_us_per_job']:,.0f} ({by['supervisor']:,.0f} / "
                        f"{by['children']:,.0f}) | "
                        f"{r['postgres_cpu_us_per_job']:,.0f} | {target} | {met} |")
    rows += ["", "| job | mode | cores used (service, PostgreSQL, peers, wrk, bench, others, "
             "idle) | load average at the start | quota throttled |", "|---|---|---|---|---|"]
    for key, (what, _) in JOBS.items():
        for mode in MODES:
            r = results[key][mode.name]
            rows.append(f"| {what} | {mode.name} | {cores_row(r)} | {r['load_average']} | "
                        f"{throttled_row(r) if 'quota' in r else 'no quota'} |")
    return "\n".join(rows)
