"""The wheel as a user gets it: built from the checkout, installed in a fresh
venv, run from an empty folder with no checkout in sight — `wagate init`,
`wagate check-config`, `wagate serve`, then "Hola" from a Spanish number gets
its Spanish confirmation (the catalogs and example config ride in the wheel)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_cli import free_port, stop_service, wait_ready
from tests.test_registration import REGISTERED, expected

pytestmark = pytest.mark.slow(90)  # a build, a venv, a pip install, a real process

# What the build reads: copied, so the checkout gets no build/ or egg-info.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE",
                "config.example.toml", "bot", "handlers", "locales")


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{cmd}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    source = tmp_path / "source"
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        tmp_path, env, timeout=300)
    (wheel,) = dist.glob("wagate-*.whl")
    return wheel


def test_the_installed_wheel_runs_from_an_empty_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in {"WAGATE_CONFIG", "PYTHONPATH", "VIRTUAL_ENV"}}
    wheel = build_wheel(tmp_path, env)
    venv = tmp_path / "venv"
    # No pip of its own (ensurepip is seconds of CPU): this one's installs into it.
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         str(wheel)], tmp_path, env, timeout=400)
    bin_ = venv / "bin"
    here = tmp_path / "empty"
    here.mkdir()

    where = run([str(bin_ / "python"), "-c", "import bot.shipped_files as s; "
                 "print(s.locales_dir()); print(s.example_config())"], here, env).stdout
    assert all(Path(line).resolve().is_relative_to(venv.resolve()) for line in where.split()), where

    init = run([str(bin_ / "wagate"), "init"], here, env).stdout
    token = init.split("admin token: ")[1].split()[0]
    config = here / "wagate.toml"
    assert f'token = "{token}"' in config.read_text()
    again = subprocess.run([str(bin_ / "wagate"), "init"], cwd=here, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "pass --force" in again.stderr
    assert f'token = "{token}"' in config.read_text()

    port = free_port()
    config.write_text(config.read_text().replace("port = 8080", f"port = {port}"))
    checked = run([str(bin_ / "wagate"), "check-config"], here, env).stdout
    assert checked.startswith("wagate.toml: OK"), checked

    log_path = here / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(bin_ / "wagate"), "serve"], cwd=here, env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_ready(proc, port, log_path, timeout=60)
        sent = run([str(bin_ / "wagate"), "simulate", "--from", "+34600000001", "Hola"],
                   here, env).stdout
        assert "delivered inbound message" in sent
        deadline = time.monotonic() + 20
        while True:
            listing = run([str(bin_ / "wagate"), "outbox"], here, env).stdout
            if "[sent]" in listing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert expected("es", REGISTERED) in listing, listing
    finally:
        stop_service(proc)
    assert proc.returncode == 0, log_path.read_text()
    assert "notice: no --config" not in log_path.read_text()  # its own config, not the example

