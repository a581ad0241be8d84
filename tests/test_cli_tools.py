"""The CLI a newcomer meets, against a real `wagate serve` process: the
registrations view, `wagate send`, `--version`, `--config` on either side of
the command, help, a busy port and a missing config."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.store.sqlite import MIGRATIONS, SqliteStore
from tests.test_cli import free_port, start_service, stop_service, wagate, write_config


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
