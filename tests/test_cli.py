"""The README's tour, for real: `wagate serve` in a subprocess, then
`wagate simulate` and `wagate outbox` against it."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_registration import REGISTERED, expected

pytestmark = pytest.mark.slow  # real `wagate` processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wagate(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True,
                          timeout=60, check=check, cwd=ROOT)


class Service:
    def __init__(self, config: Path, port: int, proc: subprocess.Popen[str]) -> None:
        self.config = config
        self.port = port
        self.proc = proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_service(config: Path, port: int, *args: str,
                  timeout: float = 20) -> subprocess.Popen[str]:
    """`wagate serve` in a subprocess, ready (within `timeout` s); its output goes
    to `config`.log."""
    log_path = config.with_suffix(".log")
    with log_path.open("w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--config", str(config),
                                 *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                text=True)
    wait_ready(proc, port, log_path, timeout)
    return proc


def wait_ready(proc: subprocess.Popen[str], port: int, log_path: Path,
               timeout: float = 20) -> None:
    """Until /readyz answers 200; a process that exits or never gets there fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"wagate exited: {log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"wagate did not become ready: {log_path.read_text()}")


def write_config(tmp_path: Path, port: int) -> Path:
    example = (ROOT / "config.example.toml").read_text()
    text = example.replace("port = 8080", f"port = {port}").replace(
        'url = "sqlite:///./wagate.db"', f'url = "sqlite:///{tmp_path / "wagate.db"}"').replace(
        'pid_file = "wagate.pid"', f'pid_file = "{tmp_path / "wagate.pid"}"')
    text += textwrap.dedent(f"""
        [locales]
        dir = "{ROOT / 'locales'}"
    """)
    path = tmp_path / "wagate.toml"
    path.write_text(text)
    return path


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    port = free_port()
    config = write_config(tmp_path, port)
    proc = start_service(config, port)
    yield Service(config, port, proc)
    stop_service(proc)


def stop_service(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, and SIGKILL if it has not exited within 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_tour_simulate_hola_then_outbox(service: Service) -> None:
    out = wagate("simulate", "--config", str(service.config), "--from", "+34600000001", "Hola")
    assert "delivered inbound message" in out.stdout
    deadline = time.monotonic() + 10
    while True:
        listing = wagate("outbox", "--config", str(service.config)).stdout
        if "[sent]" in listing or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert expected("es", REGISTERED) in listing
    assert "+34600000001" in listing and "[sent]" in listing
    regs = wagate("registrations", "--config", str(service.config), "+34600000001").stdout
    assert "es" in regs and "active" in regs


def test_sigterm_exits_cleanly(service: Service) -> None:
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(15) == 0
    assert not Path(str(service.config).replace("wagate.toml", "wagate.pid")).exists()


def test_check_config_and_hash_secret(tmp_path: Path) -> None:
    ok = wagate("check-config", str(ROOT / "config.example.toml"))
    assert "OK" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "config.example.toml").read_text().replace(
        'plan = "enterprise"', 'plan = "gold"'))
    refused = wagate("check-config", str(bad), check=False)
    assert refused.returncode == 2
    assert f"{bad}:" in refused.stderr and "unknown plan 'gold'" in refused.stderr
    hashed = wagate("hash-secret", "s3cret").stdout.strip()
    assert hashed == f'secret_sha256 = "{hashlib.sha256(b"s3cret").hexdigest()}"'


def test_unreachable_service_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    result = wagate("outbox", "--config", str(config), check=False)
    assert result.returncode != 0 and "cannot reach wagate" in result.stderr
    assert os.path.exists(config)
