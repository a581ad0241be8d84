"""The managed subscribers' crash suite, small form: the real service
SIGKILLed while admin changes are in flight loses no acknowledged change and
leaves none half-applied (reliability/crash_managed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import crash_managed
from reliability.common import table

pytestmark = pytest.mark.slow(15)  # a real process killed mid-change


async def test_sigkills_mid_change_leave_nothing_half_applied(tmp_path: Path) -> None:
    rows = await crash_managed.run(small=True, workdir=tmp_path)
    judged = [row for row in rows if row.target]
    assert len(judged) == 3, "\n" + table(rows)
    assert all(row.met for row in judged), "\n" + table(rows)
