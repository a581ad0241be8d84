"""`wagate serve` with no --config, in a checkout, runs the example config:
it says so on stderr at start, with the example admin token, so nobody
deploys it by accident; a config named by --config or WAGATE_CONFIG is not
the example's and gets no notice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_cli import free_port, stop_service, write_config
from tests.test_cli_tools import PYTHONPATH

NOTICE = "notice: no --config and no WAGATE_CONFIG: running the example config {path} with " \
         "its example admin token; not for a deployment: pass --config PATH"


def checkout(tmp_path: Path, port: int) -> Path:
    """A folder holding config.example.toml (on `port`, its files in tmp_path)."""
    return write_config(tmp_path, port).rename(tmp_path / "config.example.toml")


def env_without_config() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "WAGATE_CONFIG"}, **PYTHONPATH}


def test_serve_on_the_example_config_says_so_first(tmp_path: Path) -> None:
    port = free_port()
    example = checkout(tmp_path, port)
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=tmp_path,
                                env=env_without_config(), stdout=subprocess.DEVNULL,
                                stderr=log, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "wagate did not become ready"
                time.sleep(0.1)
    finally:
        stop_service(proc)
    lines = log_path.read_text().splitlines()
    assert lines[0] == NOTICE.format(path=example.resolve())
    assert any("wagate serving on" in line for line in lines[1:])


@pytest.mark.parametrize("named", ["nothing", "--config", "WAGATE_CONFIG"])
def test_only_the_fallen_back_on_example_gets_the_notice(tmp_path: Path, named: str) -> None:
    with socket.socket() as busy:  # the start fails at once, after the notice if any
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        example = checkout(tmp_path, port)
        env, args = env_without_config(), ["serve"]
        if named == "--config":
            args += ["--config", example.name]
        elif named == "WAGATE_CONFIG":
            env["WAGATE_CONFIG"] = example.name
        done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    lines = done.stderr.splitlines()
    assert done.returncode == 1
    assert lines[-1] == f"error: cannot listen on 127.0.0.1:{port}: address already in use"
    notices = [line for line in lines if line.startswith("notice:")]
    if named == "nothing":
        assert notices == [NOTICE.format(path=example.resolve())] and lines[0] == notices[0]
    else:
        assert notices == []
