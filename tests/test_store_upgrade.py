"""A SQLite database is brought up to date in one transaction: a new one costs
one commit (one fsync) rather than one per migration, and an upgrade that
fails part way leaves the database as it was, not half upgraded."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from bot.store import SqliteStore
from bot.store.sqlite.engine import MIGRATIONS


async def test_a_failed_upgrade_changes_nothing(tmp_path: Path) -> None:
    # The last migration that creates a table fails (the table is there
    # already); the one before it would have succeeded.
    last = max(i for i, script in enumerate(MIGRATIONS) if re.search(r"CREATE TABLE \w", script))
    [table] = re.findall(r"CREATE TABLE (\w+)", MIGRATIONS[last])[:1]
    start = last - 1
    db_path = tmp_path / "old.db"
    with sqlite3.connect(db_path, isolation_level=None) as db:
        for script in MIGRATIONS[:start]:
            db.executescript(script)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (?)", (start,))
        db.execute(f"CREATE TABLE {table} (x INTEGER)")
        before = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}

    with pytest.raises(sqlite3.OperationalError, match=f"table {table} already exists"):
        await SqliteStore.open(str(db_path))
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(start,)]
        assert {r[0] for r in db.execute("SELECT name FROM sqlite_master")} == before


async def test_a_new_database_is_at_the_latest_version(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "new.db"))
    await store.close()
    store = await SqliteStore.open(str(tmp_path / "new.db"))  # reopened: nothing to do
    await store.close()
    with sqlite3.connect(tmp_path / "new.db") as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [
            (len(MIGRATIONS),)]
