"""The CLI a newcomer meets, against a real `wagate serve` process: the
registrations view, `wagate send`, `--version`, `--config` on either side of
the command, help, a busy port and a missing config."""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from bot.cli import build_parser, main
from bot.store.sqlite import MIGRATIONS, SqliteStore
from tests.conftest import ROOT
from tests.test_cli import free_port, start_service, stop_service, wagate, write_config

ACME = {"X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "acme-secret-change-me"}
# `python -m bot` from another folder finds the checkout (installed or not).
PYTHONPATH = {"PYTHONPATH": str(ROOT)}
# Real `wagate` processes (slow: started first); one worker runs the module,
# so its one service (the `running` fixture) starts once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cli_tools")]


class Running:
    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.port = port

    @property
    def cfg(self) -> tuple[str, str]:
        return ("--config", str(self.config))

    def json(self, *args: str) -> Any:
        return json.loads(wagate(*args, *self.cfg, "--json").stdout)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One service for the module: each test uses its own numbers."""
    tmp_path = tmp_path_factory.mktemp("cli")
    port = free_port()
    config = write_config(tmp_path, port)
    proc = start_service(config, port)
    yield Running(config, port)
    stop_service(proc)


def urlopen_json(running: Running, path: str, headers: dict[str, str]) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{running.port}{path}", headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read()


def inbound_at(running: Running, number: str, text: str) -> str:
    """When the service received `text` from `number` (the message log's time)."""
    log = running.json("messages", "--direction", "in", "--number", number)["messages"]
    return next(m["at"] for m in log if m["text"] == text)


def test_registrations_show_when_the_user_opted_out(running: Running) -> None:
    number = "+34600000011"
    wagate("simulate", *running.cfg, "--from", number, "Hola")
    wagate("simulate", *running.cfg, "--from", number, "ALTO")
    stopped_at = inbound_at(running, number, "ALTO")
    # A second STOP changes nothing: the user has been out since the first.
    wagate("simulate", *running.cfg, "--from", number, "STOP")
    line = wagate("registrations", *running.cfg, number).stdout
    assert f"opted_out  since {stopped_at}" in line, line
    shown = running.json("registrations", number)["registrations"][0]
    assert shown["opted_out_at"] == stopped_at

    # Back with Hi: active since then, no opt-out time any more.
    wagate("simulate", *running.cfg, "--from", number, "Hi")
    back_at = inbound_at(running, number, "Hi")
    assert f"active     since {back_at}" in wagate("registrations", *running.cfg, number).stdout
    assert running.json("registrations", number)["registrations"][0]["opted_out_at"] is None

    # An admin's opt-out is an opt-out too; doing it again keeps the first time.
    out = running.json("registrations", number, "--opt-out")
    by_admin = out["registrations"][0]["opted_out_at"]
    assert by_admin is not None and by_admin > back_at
    again = running.json("registrations", number, "--opt-out")
    assert again["changed"] == 0 and again["registrations"][0]["opted_out_at"] == by_admin
    listing = wagate("registrations", *running.cfg, "--status", "opted_out").stdout
    assert f"{number}     en       opted_out  since {by_admin}" in listing, listing


async def test_an_older_database_gets_the_opt_out_time_of_its_last_change(
        tmp_path: Path) -> None:
    """Rows opted out before the column existed: their last change is the best time there is."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for script in MIGRATIONS[:4]:
            for statement in script.split(";"):
                db.execute(statement)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (4)")
        db.executemany("INSERT INTO registrations (instance_id, number, locale, status,"
                       " registered_at, updated_at) VALUES (1, ?, 'es', ?, 100.0, ?)",
                       [("+34600000001", "opted_out", 200.0), ("+34600000002", "active", 300.0)])
    store = await SqliteStore.open(str(path))
    try:
        rows = {r.number: r for r in await store.list_registrations(instance_id=None, status=None,
                                                                    limit=10)}
    finally:
        await store.close()
    assert rows["+34600000001"].opted_out_at == 200.0
    assert rows["+34600000002"].opted_out_at is None


def test_send_then_mark_delivered_as_the_readme_tour_does(running: Running) -> None:
    number = "+34600000021"
    wagate("simulate", *running.cfg, "--from", number, "Hola")
    # No credentials given: acme's secret is written in the config, and acme uses instance 1.
    sent = wagate("send", *running.cfg, "--to", number, "--wait", "Your order (y)").stdout
    message_id, status = sent.split()
    assert status == "sent"
    outbox = running.json("outbox", "--to", number)["messages"]
    assert [m["text"] for m in outbox if m["id"] == message_id] == ["Your order 👍"]

    marked = wagate("simulate", *running.cfg, "--status", "delivered", "--message", message_id)
    assert marked.stdout.strip() == f"message {message_id}: delivered"
    back = wagate("simulate", *running.cfg, "--status", "sent", "--message", message_id)
    assert "delivered (unchanged" in back.stdout
    seen = json.loads(urlopen_json(running, f"/v3/whatsapp/messages/{message_id}", ACME))
    assert seen["status"] == "delivered"
    failed = running.json("simulate", "--status", "failed", "--message", message_id,
                          "--error-code", "131026", "--error-title", "Undeliverable")
    assert failed["message"]["error"] == {"code": 131026, "title": "Undeliverable"}

    unknown = wagate("simulate", *running.cfg, "--status", "read", "--message", "nope",
                     check=False)
    assert unknown.returncode != 0
    assert "HTTP 404: no message with id 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    lonely = wagate("simulate", *running.cfg, "--status", "read", check=False)
    assert lonely.returncode != 0 and "--status needs --message" in lonely.stderr


def test_send_credentials_and_refusals(running: Running,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    number = "+34600000022"
    # Not registered: the API's own words, and a non-zero exit.
    refused = wagate("send", *running.cfg, "--to", number, "hello", check=False)
    assert refused.returncode != 0
    assert refused.stderr.startswith("error: HTTP 472: ") and number in refused.stderr
    wagate("simulate", *running.cfg, "--from", number, "Hola")
    explicit = wagate("send", *running.cfg, "--to", number, "--client-id", "dev@acme.example",
                      "--client-secret", "acme-secret-change-me", "hi").stdout
    assert explicit.split()[1] == "queued"
    wrong = wagate("send", *running.cfg, "--to", number, "--client-id", "dev@acme.example",
                   "--client-secret", "guess", "hi", check=False)
    assert wrong.returncode != 0 and "HTTP 474" in wrong.stderr
    # From the environment, as documented.
    monkeypatch.setenv("WAGATE_CLIENT_ID", "dev@acme.example")
    monkeypatch.setenv("WAGATE_CLIENT_SECRET", "wrong-from-env")
    from_env = wagate("send", *running.cfg, "--to", number, "hi", check=False)
    assert "HTTP 474" in from_env.stderr
    monkeypatch.delenv("WAGATE_CLIENT_ID")
    monkeypatch.delenv("WAGATE_CLIENT_SECRET")
    # An instance no subscriber in the file may use: nothing to fall back on.
    none = wagate("send", *running.cfg, "--to", number, "--instance", "7", "hi", check=False)
    assert none.returncode != 0
    assert "no credentials" in none.stderr and "WAGATE_CLIENT_ID" in none.stderr


def test_config_before_or_after_the_command(running: Running, tmp_path: Path) -> None:
    after = wagate("registrations", "--config", str(running.config), "--json").stdout
    before = wagate("--config", str(running.config), "registrations", "--json").stdout
    assert json.loads(after) == json.loads(before)
    # After the command wins over before it.
    missing = str(tmp_path / "missing.toml")
    assert wagate("--config", missing, "status", *running.cfg).stdout.startswith("ready")
    gone = wagate("status", "--config", missing, check=False)
    assert gone.returncode != 0
    assert gone.stderr.strip() == f"error: config file not found: {missing} (from --config)"
    # The same service answers wherever --config stands (the JSON ids, not the
    # lines: a delivery's retry count moves while it fails).
    listed = [{d["id"] for d in json.loads(wagate(*args, "--json").stdout)["deliveries"]}
              for args in (["--config", str(running.config), "deliveries", "list"],
                           ["deliveries", "--config", str(running.config), "list"],
                           ["deliveries", "list", "--config", str(running.config)])]
    assert listed[0] == listed[1] == listed[2]
    checked = wagate("--config", str(running.config), "check-config").stdout
    assert checked.startswith(f"{running.config}: OK")


def test_missing_default_config_says_where_it_looked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WAGATE_CONFIG"}
    outside = subprocess.run([sys.executable, "-m", "bot", "outbox"], capture_output=True,
                             text=True, timeout=60, cwd=tmp_path, env={**env, **PYTHONPATH})
    assert outside.returncode != 0 and "Traceback" not in outside.stderr
    assert outside.stderr.strip() == (
        f"error: no config file: looked for {tmp_path / 'wagate.toml'} and config.example.toml"
        " (the defaults); run `wagate init` to write a starter one, or pass --config PATH or"
        " set WAGATE_CONFIG")
    named = subprocess.run([sys.executable, "-m", "bot", "outbox"], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path,
                           env={**env, **PYTHONPATH, "WAGATE_CONFIG": "elsewhere.toml"})
    assert named.stderr.strip() == ("error: config file not found: elsewhere.toml "
                                    "(from WAGATE_CONFIG)")


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    version = wagate("--version").stdout.strip()
    assert version == f"wagate {metadata.version('wagate')}"
    top = wagate("--help").stdout
    commands = ["init", "serve", "worker", "simulate", "send", "outbox", "registrations",
                "messages", "reload", "status", "subscribers", "audit", "deliveries",
                "migrate-store", "profile", "check-config", "hash-secret"]
    assert re.findall(r"^    ([a-z-]+)\b", top, re.MULTILINE) == commands
    actions = ["list", "show", "retry", "replay", "endpoints", "enable-endpoint"]
    for args in ([[c] for c in commands] + [["deliveries", a] for a in actions]
                 + [["profile", a] for a in ("show", "set")]
                 + [["subscribers", a] for a in ("list", "show", "add", "set", "suspend",
                                                 "resume", "delete", "rotate")]):
        with pytest.raises(SystemExit) as done:
            main([*args, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert f"example:\n  wagate {' '.join(args)}" in text, args
    # Every option and argument of every command says what it is for.
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            else:
                assert action.help, (parser.prog, action.option_strings or action.dest)


def test_a_busy_port_is_one_clear_line(running: Running) -> None:
    pid_file = running.config.parent / "wagate.pid"
    first_pid = pid_file.read_text()
    second = wagate("serve", *running.cfg, check=False)
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{running.port}: address already in use")
    assert "Traceback" not in second.stderr and "wagate serving" not in second.stderr
    # The first one is untouched: its pid file, and it still answers.
    assert pid_file.read_text() == first_pid
    assert wagate("status", *running.cfg).stdout.startswith("ready")


def test_the_license_file_matches_the_package_metadata() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the wagate authors\n")
    installed = metadata.metadata("wagate")
    assert installed["License-Expression"] == "MIT"
    assert installed.get_all("License-File") == ["LICENSE"]
