"""The PostgreSQL crash suite's small form (reliability/crash_pg.py): `wagate
serve --workers 2` on a fresh database, an HTTP process and then the drainer
SIGKILLed under mixed load and restarted by the supervisor, loses nothing it
acknowledged and never tells one message under two webhook-ids.

PostgreSQL is found as the store contract suite finds it (its fixture, reused):
unreachable, the test is skipped loudly, or fails with
WAGATE_TEST_POSTGRES_REQUIRED=1."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import crash_pg
from reliability.common import table
from tests.store_contract.conftest import PostgresServer
from tests.store_contract.conftest import postgres_server as postgres_server  # the fixture

pytestmark = pytest.mark.slow(25)  # real processes killed under load


async def test_sigkilled_processes_of_a_group_lose_nothing_acknowledged(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    rows = await crash_pg.run(small=True, workdir=tmp_path, server=postgres_server.url)
    judged = [row for row in rows if row.target]
    assert judged, "the suite judged nothing"
    assert all(row.met for row in judged), "\n" + table(rows)
