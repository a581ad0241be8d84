"""The SSRF suite's small form: the real service, every row with a target met."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.common import table
from reliability.ssrf import run

pytestmark = pytest.mark.slow  # a real service and its peers


async def test_ssrf_suite_small_form_meets_every_target(tmp_path: Path) -> None:
    rows = await run(small=True, workdir=tmp_path)
    assert rows and all(r.suite == "ssrf" for r in rows)
    assert any(r.target for r in rows)
    assert all(r.met for r in rows if r.target), table(rows)
