"""Operations against a real `wagate serve` process: SIGHUP bursts, SIGTERM
draining a request in flight, the admin CLI, JSON logs."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import free_port, start_service, stop_service, wagate, write_config
from tests.test_operations import NEW_SUBSCRIBER as NEWCO

pytestmark = pytest.mark.slow  # real `wagate` processes

TOKEN = "change-me-admin-token"  # config.example.toml's


class Proc:
    def __init__(self, config: Path, port: int, proc: subprocess.Popen[str], log: Path) -> None:
        self.config = config
        self.port = port
        self.proc = proc
        self.log = log
        self.base = config.read_text()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write(self, text: str) -> None:
        tmp = self.config.with_suffix(".tmp")  # write and rename, as editors do
        tmp.write_text(text)
        tmp.replace(self.config)

    def get(self, path: str, admin: bool = True) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, headers={
            "Authorization": f"Bearer {TOKEN}"} if admin else {})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def post(self, path: str, body: dict[str, Any]) -> int:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code


def start(tmp_path: Path, *args: str, shutdown_timeout: float = 5) -> Proc:
    port = free_port()
    config = write_config(tmp_path, port)
    config.write_text(config.read_text().replace(
        "pid_file =", f"shutdown_timeout = {shutdown_timeout}\npid_file =", 1))
    proc = start_service(config, port, *args)
    return Proc(config, port, proc, config.with_suffix(".log"))


def stop(p: Proc) -> None:
    stop_service(p.proc)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Proc]:
    p = start(tmp_path)
    yield p
    stop(p)


def test_sighup_ten_times_in_a_second_under_traffic(svc: Proc) -> None:
    failures: list[int] = []
    done = threading.Event()

    def traffic() -> None:
        n = 0
        while not done.is_set():
            n += 1
            status = svc.post("/sandbox/inbound", {"instance": 1, "from": f"+3461{n:07d}",
                                                   "text": "Hola"})
            if status != 200:
                failures.append(status)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        for i in range(10):  # the file flips while signals land; it ends with newco
            svc.write(svc.base + (NEWCO if i % 2 else ""))
            svc.proc.send_signal(signal.SIGHUP)
            time.sleep(0.09)
        # The reloads coalesce and finish at their own pace (a loaded machine can
        # hold a generation still for longer than any fixed pause): wait until the
        # last file written is in force, or the deadline says it never will be.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            _, again = svc.get("/admin/config")
            if [s["id"] for s in again["subscribers"]] == ["acme", "newco"]:
                break
            time.sleep(0.1)
    finally:
        done.set()
        sender.join()
    assert not failures
    assert svc.proc.poll() is None
    # Consistent: the config in force is the file as it was last written.
    assert [s["id"] for s in again["subscribers"]] == ["acme", "newco"]
    assert 2 <= again["generation"] <= 11
    log = svc.log.read_text()
    # Ordinary signals don't queue: two that land while the loop is busy (a
    # loaded machine, a reload under way) are one. What counts is the state above.
    assert 2 <= log.count("SIGHUP: reloading") <= 10
    assert "Traceback" not in log and "refused" not in log
    assert svc.get("/readyz", admin=False)[0] == 200


def test_sigterm_finishes_the_request_in_flight_then_exits_0(svc: Proc) -> None:
    body = json.dumps({"instance": 1, "from": "+34600000042", "text": "Hola",
                       "id": "in-flight-1"}).encode()
    head = (f"POST /sandbox/inbound HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as conn:
        conn.sendall(head + body[:10])  # the handler is running, waiting for the rest
        time.sleep(0.3)
        started = time.monotonic()
        svc.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # No new connections are accepted while the old request drains.
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", svc.port),
                                                               timeout=2):
            pass
        conn.sendall(body[10:])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b'"in-flight-1"' in answer
    assert svc.proc.wait(15) == 0
    assert time.monotonic() - started < 5 + 10  # within shutdown_timeout (+ worker stop)
    assert not (svc.config.parent / "wagate.pid").exists()
    log = svc.log.read_text()
    assert "wagate stopped" in log and "Traceback" not in log
    with sqlite3.connect(svc.config.parent / "wagate.db") as db:  # closed cleanly, committed
        rows = db.execute("SELECT sender FROM inbound WHERE provider_message_id = ?",
                          ("in-flight-1",)).fetchall()
        claimed = db.execute("SELECT COUNT(*) FROM outbound WHERE claimed_until IS NOT NULL"
                             " AND status = 'queued'").fetchone()[0]
    assert rows == [("+34600000042",)] and claimed == 0


@pytest.mark.slow(12)  # many `wagate` commands
def test_admin_cli(svc: Proc) -> None:
    cfg = ("--config", str(svc.config))
    wagate("simulate", *cfg, "--from", "+34600000001", "Hola")
    # reload through the admin API: the outcome, and the reason when refused
    ok = wagate("reload", *cfg)
    assert "reloaded (generation 2)" in ok.stdout
    svc.write(svc.base.replace('plan = "enterprise"', 'plan = "gold"'))
    refused = wagate("reload", *cfg, check=False)
    assert refused.returncode != 0
    assert f"{svc.config}:" in refused.stderr and "unknown plan 'gold'" in refused.stderr
    svc.write(svc.base + NEWCO)
    signalled = wagate("reload", *cfg, "--signal", "--json")
    assert json.loads(signalled.stdout)["status"] == "signalled"
    deadline = time.monotonic() + 5
    while svc.get("/admin/config")[1]["generation"] != 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = wagate("status", *cfg)
    assert status.stdout.startswith("ready") and "acme (enterprise), newco" in status.stdout
    assert json.loads(wagate("status", *cfg, "--json").stdout)["config"]["generation"] == 3

    # registrations: list, show, opt out by hand
    listing = wagate("registrations", *cfg).stdout
    assert "+34600000001" in listing and "active" in listing
    out = wagate("registrations", *cfg, "+34 600 000 001", "--opt-out", "--instance", "1")
    assert "opted out on 1 instance(s)" in out.stdout and "opted_out" in out.stdout
    shown = json.loads(wagate("registrations", *cfg, "+34600000001", "--json").stdout)
    assert shown["registrations"][0]["status"] == "opted_out"
    missing = wagate("registrations", *cfg, "--opt-out", check=False)
    assert missing.returncode != 0 and "needs a number" in missing.stderr

    messages = json.loads(wagate("messages", *cfg, "--json").stdout)["messages"]
    assert messages[0]["direction"] == "in"
    assert "+34600000001" in wagate("messages", *cfg).stdout
    assert json.loads(wagate("outbox", *cfg, "--json").stdout)["messages"]
    checked = json.loads(wagate("check-config", str(svc.config), "--json").stdout)
    assert checked["ok"] is True and checked["subscribers"] == 2
    hashed = json.loads(wagate("hash-secret", "s3cret", "--json").stdout)
    assert len(hashed["secret_sha256"]) == 64

    # a wrong token: 401, and the log has nothing that helps a guesser
    bad = svc.config.with_name("bad.toml")
    bad.write_text(svc.base.replace(TOKEN, "guessing-token-42"))
    denied = wagate("registrations", "--config", str(bad), check=False)
    assert denied.returncode != 0 and "HTTP 401" in denied.stderr
    log = svc.log.read_text()
    assert "guessing-token-42" not in log and "unauthorized GET /admin/registrations" in log


def test_json_logs_with_request_ids_and_no_bodies(tmp_path: Path) -> None:
    p = start(tmp_path, "--log-format", "json")
    try:
        req = urllib.request.Request(p.url + "/sandbox/inbound", data=json.dumps({
            "instance": 1, "from": "+34600000001", "text": "Hola, secret words"}).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "X-Request-Id": "req-77"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.headers["X-Request-Id"] == "req-77"
    finally:
        stop(p)
    lines = [json.loads(line) for line in p.log.read_text().splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in lines)
    [inbound] = [e for e in lines if e["message"].startswith("inbound ")]
    assert inbound["request_id"] == "req-77"
    assert not any("secret words" in e["message"] for e in lines)
