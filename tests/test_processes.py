"""Several processes, for real: the SQLite one-process rule (a second `wagate
serve` or `wagate worker` on the same file is refused and changes nothing),
`wagate worker` draining the queues alone, and `wagate serve --workers N`'s
supervisor (reload, drain, restart, metrics and readiness across processes).

Groups of more than one HTTP process need PostgreSQL: those tests run in a
fresh schema on $WAGATE_TEST_POSTGRES_URL, skipped (loudly) when it cannot be
reached, failed instead with WAGATE_TEST_POSTGRES_REQUIRED=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.conftest import ADMIN, ADMIN_TOKEN, ROOT
from tests.store_contract.conftest import PostgresServer
from tests.store_contract.conftest import own_database as own_database  # the fixture
from tests.store_contract.conftest import postgres_server as postgres_server  # the fixture
from tests.test_cli import free_port, start_service, stop_service, wagate
from tests.test_operations import NEW_SUBSCRIBER
from tests.test_webhooks_recovery import Recorder, inject, service_config, until

pytestmark = pytest.mark.slow  # real `wagate` processes


def in_use(db: Path, pid: int) -> str:
    return (f"error: {db} is in use by wagate pid {pid} (SQLite allows one process; use "
            "PostgreSQL to run several)")


def with_pid_file(config: Path) -> Path:
    pid_file = config.parent / "wagate.pid"
    config.write_text(config.read_text().replace(
        "shutdown_timeout = 2", f'shutdown_timeout = 2\npid_file = "{pid_file}"', 1))
    return pid_file


def on_port(config: Path, port: int, name: str) -> Path:
    """The same config (same database), listening elsewhere."""
    other = config.with_name(name)
    other.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", config.read_text(),
                            count=1))
    return other


def claimed(db: Path) -> list[str]:
    """The webhook deliveries under a claim, read as an operator would."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return sorted(r[0] for r in conn.execute(
            "SELECT id FROM webhook_deliveries WHERE claimed_until IS NOT NULL"))


def run_second(*args: str) -> subprocess.CompletedProcess[str]:
    """Start another wagate; one still running after 20 s (the defect: it did
    not refuse) is stopped as an operator would, with SIGTERM."""
    proc = subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def get(url: str, admin: bool = False) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
                                 if admin else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    except OSError:  # between a process's death and its restart
        return 0, ""
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, "condition not met in time"
            return result
        time.sleep(0.1)


async def answering(recorder: Recorder, port: int) -> web.AppRunner:
    """acme's receiver on `port`, acknowledging every delivery (`recorder.acked`)."""
    recorder.hang = False
    app = web.Application()
    app.router.add_post("/acme", recorder.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


# ------------------------------------------------------------------ SQLite: one process


async def test_a_second_wagate_on_the_same_sqlite_file_is_refused_and_changes_nothing(
        tmp_path: Path) -> None:
    port, receiver_port = free_port(), free_port()
    config = service_config(tmp_path, port, receiver_port)
    # Attempts outlast the test, so their claims hold still while it looks.
    config.write_text(config.read_text().replace("timeout = 5\n", "timeout = 120\n", 1))
    pid_file = with_pid_file(config)
    db = tmp_path / "wagate.db"
    recorder = Recorder()  # answers nothing until released: deliveries stay claimed
    app = web.Application()
    app.router.add_post("/acme", recorder.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
    proc: subprocess.Popen[str] | None = None
    try:
        proc = await asyncio.to_thread(start_service, config, port)
        async with aiohttp.ClientSession() as session:
            await inject(session, f"http://127.0.0.1:{port}", ["one", "two"])
        await until(lambda: len(recorder.seen) >= 2)
        held = claimed(db)
        assert len(held) == 2
        first_pid = pid_file.read_text()
        assert first_pid == f"{proc.pid}\n"

        other = on_port(config, free_port(), "other.toml")
        for command in ("serve", "worker"):
            second = await asyncio.to_thread(run_second, command, "--config", str(other))
            assert second.returncode == 1, second.stderr
            assert second.stderr.strip().splitlines() == [in_use(db, proc.pid)]
        # The first is untouched: its pid file, its claims, and it still answers.
        assert pid_file.read_text() == first_pid
        assert claimed(db) == held
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        signalled = await asyncio.to_thread(wagate, "reload", "--signal", "--config",
                                            str(config))
        assert f"sent SIGHUP to wagate (pid {proc.pid})" in signalled.stdout
        await until(lambda: get(f"http://127.0.0.1:{port}/readyz")[1]["config_generation"]
                    == 2)
    finally:
        recorder.hang = False
        recorder.release.set()
        if proc is not None:
            stop_service(proc)
        await runner.cleanup()


def test_the_lock_of_a_killed_wagate_does_not_block_a_restart(tmp_path: Path) -> None:
    port = free_port()
    config = service_config(tmp_path, port, free_port())
    first = start_service(config, port)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    lock = tmp_path / "wagate.db.lock"
    assert lock.read_text() == f"{first.pid}\n"  # left behind, as a crash leaves it
    again = start_service(config, port)
    try:
        assert lock.read_text() == f"{again.pid}\n"
    finally:
        stop_service(again)


def test_several_processes_on_sqlite_are_refused_before_anything_is_touched(
        tmp_path: Path) -> None:
    config = service_config(tmp_path, free_port(), free_port())
    refused = wagate("serve", "--workers", "2", "--config", str(config), check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"error: --workers 2 needs PostgreSQL: SQLite allows one process per file "
        f"({tmp_path / 'wagate.db'}); use --workers 1, or [storage] url = "
        '"postgresql://..."')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wagate.toml"]


async def test_wagate_worker_alone_delivers_what_a_stopped_serve_left_queued(
        tmp_path: Path) -> None:
    port, receiver_port = free_port(), free_port()
    config = service_config(tmp_path, port, receiver_port)
    log = tmp_path / "worker.log"
    proc = await asyncio.to_thread(start_service, config, port)
    try:  # the receiver is down: the deliveries wait out their retries
        async with aiohttp.ClientSession() as session:
            await inject(session, f"http://127.0.0.1:{port}", [f"queued {i}" for i in range(3)])
    finally:
        await asyncio.to_thread(stop_service, proc)
    recorder = Recorder()
    runner = await answering(recorder, receiver_port)
    with log.open("w") as out:
        worker = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, "-m", "bot", "worker", "--config", str(config)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        await until(lambda: {h.json["data"]["text"] for h in recorder.acked}
                    >= {f"queued {i}" for i in range(3)})
        # No listener; on its SQLite file it is the one process.
        refused = await asyncio.to_thread(run_second, "serve", "--config", str(config))
        assert refused.stderr.strip().splitlines() == [in_use(tmp_path / "wagate.db",
                                                              worker.pid)]
        worker.send_signal(signal.SIGHUP)
        await until(lambda: "(generation 2)" in log.read_text())
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        await runner.cleanup()
    text = log.read_text()
    assert "wagate worker stopped" in text and "Traceback" not in text


# ------------------------------------------------------------------ the supervisor


class Group:
    """`wagate serve --workers N` in a subprocess, ready; its log in `log`."""

    def __init__(self, config: Path, port: int, workers: int) -> None:
        self.config = config
        self.port = port
        self.log = config.with_suffix(".log")
        self.base = config.read_text()
        self.proc = start_service(config, port, "--workers", str(workers))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> dict[str, float]:
        """Each live process's config generation, by pid, as /metrics shows it."""
        _, text = get(f"{self.url}/metrics")
        return {m[0]: float(m[1]) for m in re.findall(
            r'^wagate_config_generation\{pid="(\d+)"\} (\S+)$', text, re.MULTILINE)}

    def processes(self) -> dict[str, float]:
        _, text = get(f"{self.url}/metrics")
        return {m[0]: float(m[1]) for m in re.findall(
            r'^wagate_processes\{role="(\w+)"\} (\S+)$', text, re.MULTILINE)}

    def write(self, text: str) -> None:
        tmp = self.config.with_suffix(".tmp")  # write and rename, as editors do
        tmp.write_text(text)
        tmp.replace(self.config)

    def subscribers(self) -> list[str]:
        _, summary = get(f"{self.url}/admin/config", admin=True)
        return [s["id"] for s in summary["subscribers"]]


@pytest.fixture
def group_of_one(tmp_path: Path) -> Iterator[Group]:
    port = free_port()
    config = service_config(tmp_path, port, free_port())
    with_pid_file(config)
    group = Group(config, port, 1)
    yield group
    stop_service(group.proc)


def test_a_group_of_one_on_sqlite_reloads_restarts_and_drains(group_of_one: Group,
                                                             tmp_path: Path) -> None:
    g = group_of_one
    pid_file = tmp_path / "wagate.pid"
    assert pid_file.read_text() == f"{g.proc.pid}\n"  # the supervisor's: SIGHUP goes there
    status, ready = get(f"{g.url}/readyz")
    assert (status, ready["status"]) == (200, "ready")
    assert g.processes() == {"http": 1.0, "drainers": 1.0}
    [child] = g.pids()
    assert int(child) != g.proc.pid
    # The one child sends: Hola is answered.
    out = wagate("simulate", "--config", str(g.config), "--from", "+34600000001", "Hola")
    assert "delivered inbound message" in out.stdout
    wait_for(lambda: "[sent]" in wagate("outbox", "--config", str(g.config)).stdout)
    # A second wagate on the file is refused, naming the supervisor.
    other = on_port(g.config, free_port(), "other.toml")
    refused = run_second("serve", "--config", str(other))
    assert refused.stderr.strip().splitlines() == [in_use(tmp_path / "wagate.db", g.proc.pid)]

    # A reload asked over the admin API goes through the supervisor to every process.
    g.write(g.base + NEW_SUBSCRIBER)
    assert "reloaded (generation 2)" in wagate("reload", "--config", str(g.config)).stdout
    assert g.log.read_text().count("SIGHUP: validating") == 1
    assert g.pids() == {child: 2.0} and g.subscribers() == ["acme", "newco"]
    # SIGHUP to the supervisor reaches the child; an invalid file is refused by all.
    g.write(g.base)
    g.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: g.pids() == {child: 3.0})
    assert g.subscribers() == ["acme"]
    g.config.with_name("base.toml").write_text(g.base)
    g.write(g.base.replace('plan = "enterprise"', 'plan = "gold"'))
    g.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused, the old config stays in force in every process"
             in g.log.read_text())
    client = on_port(g.config.with_name("base.toml"), g.port, "client.toml")  # a valid copy
    refused = wagate("reload", "--config", str(client), check=False)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("error: reload refused: ")
    assert f"{g.config}:32: subscribers[0].plan: unknown plan 'gold'" in refused.stderr
    assert g.pids() == {child: 3.0} and g.subscribers() == ["acme"]
    g.write(g.base)

    # A child that dies is started again, and serves.
    os.kill(int(child), signal.SIGKILL)
    wait_for(lambda: "exited unexpectedly" in g.log.read_text())
    wait_for(lambda: len(pids := g.pids()) == 1 and child not in pids)
    wait_for(lambda: get(f"{g.url}/readyz")[0] == 200)
    assert re.search(rf"process 1 \(pid {child}\) exited unexpectedly with signal SIGKILL; "
                     r"restarting it", g.log.read_text())
    # Counters outlive the process that counted them: the first Hola's reply.
    _, metrics = get(f"{g.url}/metrics")
    sent = [line for line in metrics.splitlines()
            if line.startswith("wagate_outbound_results_total{")
            and 'outcome="sent"' in line and 'provider="sandbox"' in line]
    assert len(sent) == 1 and float(sent[0].split()[-1]) >= 1, metrics

    # SIGTERM drains them all; the supervisor exits 0 and removes its pid file.
    [restarted] = g.pids()
    g.proc.send_signal(signal.SIGTERM)
    assert g.proc.wait(30) == 0
    assert not pid_file.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(int(restarted), 0)
    log = g.log.read_text()
    assert "stopping: draining 1 process(es)" in log and "Traceback" not in log


def test_a_group_member_stops_when_its_supervisor_dies(group_of_one: Group) -> None:
    [child] = group_of_one.pids()
    group_of_one.proc.send_signal(signal.SIGKILL)
    group_of_one.proc.wait(10)
    wait_for(lambda: "supervisor gone: stopping" in group_of_one.log.read_text())

    def gone() -> bool:
        try:
            os.kill(int(child), 0)
        except ProcessLookupError:
            return True
        return False
    wait_for(gone)


# ------------------------------------------------------------------ PostgreSQL groups


@pytest.fixture
def postgres_schema_url(postgres_server: PostgresServer) -> str:
    """A fresh schema on the test server (dropped at the session's end), so the
    group starts on an empty store whatever earlier runs left."""
    schema = f"wagate_group_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await asyncpg.connect(postgres_server.url)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
        finally:
            await conn.close()

    asyncio.run(create())
    postgres_server.schemas.append(schema)
    joiner = "&" if "?" in postgres_server.url else "?"
    return f"{postgres_server.url}{joiner}search_path={schema}"


def test_a_group_of_two_on_postgres_shares_one_port(tmp_path: Path,
                                                    postgres_schema_url: str) -> None:
    port = free_port()
    config = service_config(tmp_path, port, free_port())
    config.write_text(config.read_text().replace(
        f'url = "sqlite:///{tmp_path / "wagate.db"}"', f'url = "{postgres_schema_url}"'))
    g = Group(config, port, 2)
    try:
        # Two processes on the one port, each answering and draining.
        assert g.processes() == {"http": 2.0, "drainers": 2.0}
        assert len(g.pids()) == 2
        sender = "+34600000001"  # inject's
        out = wagate("simulate", "--config", str(g.config), "--from", sender, "Hola")
        assert "delivered inbound message" in out.stdout
        wait_for(lambda: "[sent]" in wagate("outbox", "--config", str(g.config), "--to",
                                            sender).stdout)
        # SIGHUP reaches both.
        g.write(g.base + NEW_SUBSCRIBER)
        g.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: list(g.pids().values()) == [2.0] * 2)
        pids = g.pids()
        # So does a reload asked of whichever process answers the admin API.
        assert "reloaded (generation 3)" in wagate("reload", "--config", str(g.config)).stdout
        assert list(g.pids().values()) == [3.0] * 2 and g.pids().keys() == pids.keys()
        # Each reload is the group's: audited once, not once per process.
        wait_for(lambda: audited(g) == [3, 2])
        # The first process killed: restarted, the group ready again, and its
        # successor is the one that audits (a reload is still recorded once).
        victim = re.findall(r"started process 1 \(pid (\d+)\)", g.log.read_text())[0]
        os.kill(int(victim), signal.SIGKILL)
        wait_for(lambda: "exited unexpectedly" in g.log.read_text())
        wait_for(lambda: len(pids := g.pids()) == 2 and victim not in pids)
        wait_for(lambda: get(f"{g.url}/readyz")[0] == 200)
        assert "reloaded" in wagate("reload", "--config", str(g.config)).stdout
        wait_for(lambda: len(audited(g)) == 3)
        time.sleep(0.5)
        assert len(audited(g)) == 3  # and no second entry came later
        g.proc.send_signal(signal.SIGTERM)
        assert g.proc.wait(30) == 0
        assert "stopping: draining 2 process(es)" in g.log.read_text()
    finally:
        stop_service(g.proc)



def audited(g: Group) -> list[int]:
    """The config generations the audit log records reloads of, newest first."""
    out = wagate("audit", "--config", str(g.config), "--actor", "config", "--json")
    return [e["details"]["generation"] for e in json.loads(out.stdout)["entries"]]


async def test_work_queued_through_one_serve_is_picked_up_by_the_other_at_once(
        tmp_path: Path, own_database: str) -> None:
    """Two `wagate serve` on one database: the one with no drainers queues a
    greeting's confirmation and a webhook; the other sends both within a second,
    woken by the first's NOTIFY (its workers poll every 5 s)."""
    port, other_port, receiver_port = free_port(), free_port(), free_port()
    config = service_config(tmp_path, port, receiver_port)
    config.write_text(config.read_text().replace(
        f'url = "sqlite:///{tmp_path / "wagate.db"}"', f'url = "{own_database}"'))
    other = on_port(config, other_port, "other.toml")
    recorder = Recorder()
    runner = await answering(recorder, receiver_port)
    procs: list[subprocess.Popen[str]] = []
    try:
        procs.append(await asyncio.to_thread(start_service, config, port, "--no-drainers"))
        procs.append(await asyncio.to_thread(start_service, other, other_port))
        await asyncio.sleep(1.0)  # the drainers find nothing and wait
        sender = "+34600000001"  # inject's
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            await inject(session, f"http://127.0.0.1:{port}", ["Hola"])

            async def sent() -> bool:
                async with session.get(f"http://127.0.0.1:{port}/sandbox/outbox",
                                       params={"to": sender}, headers=ADMIN) as resp:
                    return [m["status"] for m in (await resp.json())["messages"]] == ["sent"]
            await until(sent, timeout=10)
            confirmed = time.monotonic() - started
        await until(lambda: recorder.acked, timeout=10)
        delivered = time.monotonic() - started
        assert confirmed < 1.5, f"confirmation sent {confirmed:.2f}s after the greeting"
        assert delivered < 1.5, f"webhook delivered {delivered:.2f}s after the greeting"
    finally:
        for proc in procs:
            stop_service(proc)
        await runner.cleanup()
