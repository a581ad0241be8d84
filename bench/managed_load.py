"""How long a process takes at start to load N managed subscribers into its
config snapshot: the store's read, the build into config objects, the merge.

    python -m bench.managed_load [--count 10000] [--store sqlite|postgres|both]

The store is filled directly (one bulk insert, as N creations through the API
would leave it: one secret each, some with a rotation's overlap), then opened
as `wagate serve` opens it and loaded by `ManagedState.refresh`, as at start.
Each figure is the median of `--runs` loads (and their spread), wall time on
this machine, and the CPU time of this process for the whole load
(`start_load_cpu`: PostgreSQL's own work is not in it); a run of the suite
meanwhile makes the wall times larger.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.harness import ROOT
from bot.config.load import load_config
from bot.config.snapshot import Snapshot, SnapshotHolder
from bot.locales import load_locales
from bot.services.managed import ManagedState, build_managed
from bot.store import open_store

POSTGRES = os.environ.get("WAGATE_BENCH_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")


def rows(count: int, now: float) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    subs, secrets_ = [], []
    for n in range(count):
        sub_id = f"customer{n:06d}"
        subs.append((sub_id, f"wg_{secrets.token_hex(12)}", "enterprise", "2026-01-01",
                     "2027-01-01" if n % 3 else None, json.dumps([1]), None, None,
                     f"ops{n}@example.com", f"Customer {n}", None, None, now, now))
        digest = hashlib.sha256(secrets.token_bytes(32)).digest()
        if n % 10 == 0:  # one in ten mid-rotation: an earlier secret still in force
            secrets_.append((sub_id, hashlib.sha256(digest).digest(), now, now + 86400))
        secrets_.append((sub_id, digest, now, None))
    return subs, secrets_


INSERT_SUB = ("INSERT INTO managed_subscribers (id, client_id, plan, since, expires, instances,"
              " keyword, keyword_key, email, name, suspended_at, deleted_at, created_at,"
              " updated_at) VALUES ({})")
INSERT_SECRET = ("INSERT INTO subscriber_secrets (subscriber_id, secret_sha256, created_at,"
                 " expires_at) VALUES ({})")


async def fill(url: str, count: int) -> None:
    store = await open_store(url)  # the schema
    await store.close()
    subs, secrets_ = rows(count, time.time())
    if url.startswith("sqlite:///"):
        import sqlite3
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.executemany(INSERT_SUB.format(", ".join("?" * 14)), subs)
            conn.executemany(INSERT_SECRET.format("?, ?, ?, ?"), secrets_)
    else:
        conn = await asyncpg.connect(url)
        try:
            await conn.executemany(INSERT_SUB.format(", ".join(f"${i}" for i in range(1, 15))),
                                   subs)
            await conn.executemany(INSERT_SECRET.format("$1, $2, $3, $4"), secrets_)
        finally:
            await conn.close()


async def load_once(url: str, snapshot: Snapshot) -> dict[str, float]:
    t0 = time.perf_counter()
    store = await open_store(url)
    t1 = time.perf_counter()
    try:
        state = ManagedState(store, SnapshotHolder(snapshot))
        rows_ = await store.load_managed(time.time())
        t2 = time.perf_counter()
        managed = build_managed(rows_)
        t3 = time.perf_counter()
        state.holder.set_managed(managed)
        t4 = time.perf_counter()
        assert len(state.holder.current.config.subscribers) >= len(rows_.subscribers)
        c4 = time.process_time()
        await state.refresh(force=True)  # the whole of it, as `wagate serve` runs it
        t5, c5 = time.perf_counter(), time.process_time()
    finally:
        await store.close()
    return {"open": t1 - t0, "read": t2 - t1, "build": t3 - t2, "merge": t4 - t3,
            "start_load": t5 - t4, "start_load_cpu": c5 - c4}


async def measure(url: str, count: int, runs: int) -> dict[str, tuple[float, float]]:
    config = load_config(ROOT / "config.example.toml")
    snapshot = Snapshot(config=config, locales=load_locales(config.locales_dir, "en"))
    await fill(url, count)
    gc.collect()
    samples = [await load_once(url, snapshot) for _ in range(runs)]
    return {key: (statistics.median(s[key] for s in samples),
                  max(s[key] for s in samples) - min(s[key] for s in samples))
            for key in samples[0]}


async def postgres_schema() -> str:
    schema = f"wagate_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(POSTGRES)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    joiner = "&" if "?" in POSTGRES else "?"
    return f"{POSTGRES}{joiner}search_path={schema}"


async def drop(url: str) -> None:
    schema = url.rsplit("search_path=", 1)[1]
    conn = await asyncpg.connect(POSTGRES)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.managed_load")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    for store in ("sqlite", "postgres") if args.store == "both" else (args.store,):
        with tempfile.TemporaryDirectory() as tmp:
            url = (f"sqlite:///{Path(tmp) / 'bench.db'}" if store == "sqlite"
                   else await postgres_schema())
            try:
                figures = await measure(url, args.count, args.runs)
            finally:
                if store == "postgres":
                    await drop(url)
        print(f"{store}: {args.count:,} managed subscribers, median of {args.runs} "
              "(spread max-min), seconds")
        for key, (median, spread) in figures.items():
            print(f"  {key:<11} {median:8.3f}  ({spread:.3f})")


if __name__ == "__main__":
    asyncio.run(main())
