"""`make bench`: load the real service over loopback and print the table.

Every figure of a request path is reported beside a bare aiohttp app that
reads and parses the same request, measured in the same run: the ratio is
the figure that counts on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import (
    ROOT,
    Bench,
    drain_outbound,
    ensure_wrk,
    fixed_rate_latency,
    free_port,
    lag_runs,
    peak_rss_mb,
    register_users,
    wait_deliveries_drained,
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="shorter runs, smaller backlogs")
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both",
                        help="the stores CPU per job is measured on (default both)")
    parser.add_argument("--quota", type=float, default=0.4, metavar="CPUS",
                        help="scaling: cap each service process at CPUS by a cgroup quota "
                             "(default 0.4); 0: pin with taskset instead (also when no cgroup "
                             "is writable, said loudly)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--only", choices=("scaling", "cpu", "a", "b", "c", "m", "media", "drains",
                                           "brokers"),
                        help="only these rows: scaling = PostgreSQL and several processes; "
                             "cpu = CPU per job of (a), (b), (c), (m); a, b, c or m = that "
                             "job's; media = (a) and (m), a text and a photo, side by side; "
                             "drains = (d) and (e); brokers = (d) to HTTP and to each broker")
    args = parser.parse_args()
    ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="wagate-bench-"))
    bench = Bench(tmp=tmp, quick=args.quick)
    for name in ("graph", "receiver", "bare", "forward", "wagate"):
        bench.ports[name] = free_port()
    try:
        for name in ("graph", "receiver", "bare"):
            bench.start(name, [sys.executable, "-m", "bench.servers", name,
                               str(bench.ports[name])], bench.url(name, "/"))
        bench.start("forward", [sys.executable, "-m", "bench.servers", "forward",
                                str(bench.ports["forward"]), bench.url("receiver", "/hook")],
                    bench.url("forward", "/"))
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
              f"work dir {tmp}", flush=True)
        from bench.cpu import run_cpu
        from bench.scaling import run_scaling

        if args.only == "scaling":
            run_scaling(bench, args.quota)
            return finish(bench.results, args.out)
        if args.only in ("drains", "brokers"):
            bench.start_wagate()
            if args.only == "drains":
                bench.results["e"] = drain_outbound(bench, 20_000 if args.quick else 50_000)
            from bench.deliveries import run_webhook_drains

            run_webhook_drains(bench, 20_000 if args.quick else 50_000)
            print()
            print(broker_rows(bench.results))
            return finish(bench.results, args.out)
        jobs = {None: "abcm", "cpu": "abcm", "media": "am"}.get(args.only, args.only or "")
        run_cpu(bench, jobs, args.store)
        if args.only:
            return finish(bench.results, args.out)
        pid = bench.start_wagate()
        register_users(bench, [f"3460{i:07d}" for i in range(500)])
        waited = wait_deliveries_drained(bench)
        print(f"deliveries left by (a)-(c) drained in {waited:.0f} s", flush=True)
        bench.results["fixed_rate_a"] = fixed_rate_latency(bench)
        bench.results["g"] = lag_runs(bench)
        bench.results["rss_paths_mb"] = peak_rss_mb(pid)
        print(f"(f) peak RSS during the fixed-rate and lag runs: "
              f"{bench.results['rss_paths_mb']:.0f} MB", flush=True)
        bench.results["e"] = drain_outbound(bench, 20_000 if args.quick else 50_000)
        from bench.deliveries import run_delivery_benchmarks

        run_delivery_benchmarks(bench)
        bench.stop("wagate")
        run_scaling(bench, args.quota)
    finally:
        for name in list(bench.procs):
            bench.stop(name)
    finish(bench.results, args.out)


def finish(results: dict[str, Any], out: str) -> None:
    """Write the results and print the tables (those of the rows that ran)."""
    from bench import cpu, scaling

    Path(out).write_text(json.dumps(results, indent=2))
    print()
    if "cpu" in results:
        print(cpu.summary(results["cpu"]))
        print()
    if "fixed_rate_a" in results:
        print(summary(results))
        print()
    if "scaling" in results:
        print(scaling.summary(results["scaling"]))
    print(f"\nresults written to {out}")


def summary(results: dict[str, Any]) -> str:
    """The results as the table of docs/PERFORMANCE.md, targets beside figures."""
    rows = ["| path | wagate | target | met |", "|---|---|---|---|"]
    fixed = results["fixed_rate_a"]
    rows.append(f"| (a) at a fixed {fixed['rate']:,}/s | p50 {fixed['p50_ms']:.1f} / "
                f"p99 {fixed['p99_ms']:.1f} ms | p99 ≤ 25 ms | "
                f"{'yes' if fixed['p99_ms'] <= 25 else 'no'} |")
    for key, what in (("half", "half"), ("full", "all")):
        g = results["g"][key]
        met = g["p99_s"] < 1 if key == "half" else g["arrived"] == g["answered"]
        rows.append(f"| (g) inbound -> webhook at {what} of (a)'s capacity ({g['rate']:,.0f}/s) "
                    f"| p50 {g['p50_s']:.2f} / p99 {g['p99_s']:.2f} s, oldest due "
                    f"{g['oldest_age_max_s']:.1f} s | "
                    f"{'p99 < 1 s' if key == 'half' else 'bounded: all arrive'} | "
                    f"{'yes' if met else 'no'} |")
    for key, name, unit in (("d", "(d) webhook drain", "deliveries"),
                            ("e", "(e) outbound drain", "messages")):
        rate = results[key]["per_second"]
        rows.append(f"| {name}, pacing lifted | {rate:,.0f} {unit}/s, "
                    f"{results[key]['cpu_us']:,.0f} µs CPU each | ≥ 8,000/s | "
                    f"{'yes' if rate >= 8000 else 'no'} |")
    rows += broker_rows(results).splitlines()[2:]
    during = [r["peak_rss_mb"] for job in results["cpu"].values()
              for name, r in job.items() if "peak_rss_mb" in r]
    peak = max(results["rss_paths_mb"], results["d"]["peak_rss_mb"], *during,
               results["e"]["peak_rss_mb"])
    rows.append(f"| (f) peak RSS during the runs | {peak:.0f} MB | ≤ 120 MB | "
                f"{'yes' if peak <= 120 else 'no'} |")
    big = results["f_backlog"]
    flat = big["peak_rss_mb"] <= 120 and big["peak_rss_mb"] <= 1.25 * results["d"]["peak_rss_mb"]
    rows.append(f"| (f) peak RSS, {big['backlog']:,} deliveries queued | "
                f"{big['peak_rss_mb']:.0f} MB ({results['d']['backlog']:,} queued: "
                f"{results['d']['peak_rss_mb']:.0f} MB) | ≤ 120 MB, flat | "
                f"{'yes' if flat else 'no'} |")
    return "\n".join(rows)


def broker_rows(results: dict[str, Any]) -> str:
    """(d) per broker beside HTTP's: CPU per delivery at most half of HTTP's."""
    rows = ["| path | wagate | target | met |", "|---|---|---|---|"]
    http = results["d"]["cpu_us"]
    for kind in ("nats", "amqp", "redis"):
        d = results.get(f"d_{kind}")
        if d is None:
            continue
        if "skipped" in d:
            rows.append(f"| (d) webhook drain to {kind} | not run: {d['skipped']} | | no |")
            continue
        rows.append(f"| (d) webhook drain to {kind}, pacing lifted | {d['per_second']:,.0f} "
                    f"deliveries/s, {d['cpu_us']:,.0f} µs CPU each ({d['cpu_us'] / http:.0%} "
                    f"of HTTP's) | ≤ 50 % of HTTP's CPU | "
                    f"{'yes' if d['cpu_us'] <= http / 2 else 'no'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
