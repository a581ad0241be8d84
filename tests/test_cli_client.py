"""The CLI's client of the running service: its failures are typed (the
service unreachable, or an answer's error status), and `wagate reload` acts
on the type and the status, never on an error's wording."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.client import ApiRefused, ServiceUnreachable, call
from bot.config.load import load_config
from tests.test_cli import free_port, start_service, stop_service, wagate, write_config

# Real `wagate` processes (slow: started first); one worker runs the module,
# so its one service (the `running` fixture) starts once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cli_client")]


class Running:
    def __init__(self, config: Path, port: int, proc: subprocess.Popen[str]) -> None:
        self.config = config
        self.port = port
        self.proc = proc
        self.text = config.read_text()

    def log(self) -> str:
        return self.config.with_suffix(".log").read_text()

    def variant(self, tmp_path: Path, old: str, new: str) -> Path:
        """A config file of its own: this service's, with `old` replaced by `new`."""
        assert old in self.text
        path = tmp_path / f"variant-{len(list(tmp_path.glob('variant-*')))}.toml"
        path.write_text(self.text.replace(old, new))
        return path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp_path = tmp_path_factory.mktemp("client")
    port = free_port()
    config = write_config(tmp_path, port)
    proc = start_service(config, port)
    yield Running(config, port, proc)
    stop_service(proc)


def test_an_error_answer_is_refused_with_its_status(running: Running) -> None:
    config = load_config(running.config)
    with pytest.raises(ApiRefused) as refused:
        call(config, "GET", "/admin/config", headers={"Authorization": "Bearer not-the-token"})
    assert refused.value.status == 401
    assert isinstance(refused.value.message, str) and refused.value.message
    assert str(refused.value) == f"HTTP 401: {refused.value.message}"
    with pytest.raises(ApiRefused) as missing:
        call(config, "GET", "/admin/deliveries/msg_not_there")
    assert missing.value.status == 404


def test_no_service_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    config = load_config(write_config(tmp_path, port))
    with pytest.raises(ServiceUnreachable) as unreachable:
        call(config, "GET", "/admin/config")
    assert unreachable.value.url == f"http://127.0.0.1:{port}"
    assert str(unreachable.value).startswith(f"cannot reach wagate at http://127.0.0.1:{port}: ")


def test_a_refused_reload_says_so_and_another_refusal_keeps_its_status(
        running: Running, tmp_path: Path) -> None:
    # The CLI reads a valid copy; the service's own file has become invalid.
    copy = running.variant(tmp_path, "[admin]", "[admin]")
    running.config.write_text(running.text.replace('plan = "enterprise"', 'plan = "gold"'))
    try:
        refused = wagate("reload", "--config", str(copy), check=False)
    finally:
        running.config.write_text(running.text)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: reload refused: ")
    assert "unknown plan 'gold'" in refused.stderr and "HTTP 422" not in refused.stderr
    other_token = running.variant(tmp_path, 'token = "change-me-admin-token"',
                                  'token = "another-admin-token"')
    unauthorized = wagate("reload", "--config", str(other_token), check=False)
    assert unauthorized.returncode == 1
    assert unauthorized.stderr.startswith("error: HTTP 401: ")
    assert "Traceback" not in refused.stderr + unauthorized.stderr


def test_reload_falls_back_on_sighup_only_when_the_service_cannot_be_reached(
        running: Running, tmp_path: Path) -> None:
    # The same pid file, another port: the API cannot be reached, the pid can.
    elsewhere = running.variant(tmp_path, f"port = {running.port}", f"port = {free_port()}")
    before = running.log().count("SIGHUP: reloading")
    signalled = wagate("reload", "--config", str(elsewhere))
    assert signalled.stdout.strip() == (f"sent SIGHUP to wagate (pid {running.proc.pid}); "
                                        "see its log for the outcome")
    deadline = time.monotonic() + 10
    while running.log().count("SIGHUP: reloading") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.log().count("SIGHUP: reloading") == before + 1
    # Told where the service is (--url), an unreachable one is an error, not a signal.
    gone = f"http://127.0.0.1:{free_port()}"
    named = wagate("reload", "--config", str(elsewhere), "--url", gone, check=False)
    assert named.returncode == 1
    assert named.stderr.startswith(f"error: cannot reach wagate at {gone}")
    assert running.log().count("SIGHUP: reloading") == before + 1
