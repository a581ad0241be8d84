"""The crash suite's small form: the real service SIGKILLed twice under mixed
load and restarted on the same store loses nothing it acknowledged, and never
tells one message under two webhook-ids (reliability/crash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import crash
from reliability.common import table

pytestmark = pytest.mark.slow(25)  # real processes killed under load


async def test_sigkills_under_load_lose_nothing_acknowledged(tmp_path: Path) -> None:
    rows = await crash.run(small=True, workdir=tmp_path)
    judged = [row for row in rows if row.target]
    assert judged, "the suite judged nothing"
    assert all(row.met for row in judged), "\n" + table(rows)
