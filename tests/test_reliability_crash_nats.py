"""The crash suite with a broker destination, small form (reliability/crash_nats.py):
the service SIGKILLed under mixed load while its webhook publishes to NATS
JetStream loses nothing it acknowledged, and never tells one message under
two webhook-ids. Without NATS: skipped loudly, or failed with
WAGATE_TEST_BROKERS_REQUIRED=1."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import crash_nats
from reliability.common import table
from tests.brokers import NATS, require


@pytest.mark.slow(seconds=40)  # real `wagate serve` processes, SIGKILLed
async def test_sigkilled_service_publishing_to_nats_loses_nothing_acknowledged(
        tmp_path: Path) -> None:
    require(NATS, "the nats broker")
    rows = await crash_nats.run(small=True, workdir=tmp_path)
    judged = [row for row in rows if row.target]
    assert judged, "the suite judged nothing"
    assert all(row.met for row in judged), "\n" + table(rows)
