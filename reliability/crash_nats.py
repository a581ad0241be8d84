"""The crash suite with a broker destination: the subscriber's webhook
publishes to the local NATS JetStream (a stream made for the run, removed
after) instead of posting to the receiver peer. Every acknowledged inbound
text must be in the stream after the kills; a delivery re-sent after a kill
carries the same `Nats-Msg-Id`, which the stream drops within its duplicate
window, so duplicates are counted as the stream holds them (the broker
de-duplicates where HTTP cannot).

    python -m reliability.crash_nats [--small]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness import Bench
from reliability import crash
from reliability.common import Row
from reliability.crash import FULL, SMALL, exercise, restart
from tests.brokers import NatsBroker, Received, unreachable

SUITE = "crash_nats"


def entry(msg: Received) -> list[Any]:
    """A stream message as the receiver peer logs a POST (bench/servers.py)."""
    event = json.loads(msg.body)
    data = event.get("data", {})
    return [msg.headers.get("webhook-id", ""), str(event.get("type")),
            str(data.get("id") or data.get("number")), msg.at]


async def run(small: bool, workdir: Path) -> list[Row]:
    broker = NatsBroker()
    why = unreachable(broker.address)
    if why is not None:
        raise RuntimeError(f"the crash suite with NATS needs NATS with JetStream: {why}")
    await broker.create()
    seen: list[list[Any]] = []

    async def hook_log() -> list[list[Any]]:
        stored = await broker.stored()
        if stored > len(seen):
            seen.extend(entry(m) for m in await broker.consume(stored - len(seen), 5.0))
        return seen

    try:
        return await exercise(Bench(tmp=workdir, quick=small, webhook_url=broker.url()), SUITE,
                              SMALL if small else FULL, restart, hook_log)
    finally:
        await broker.close()


if __name__ == "__main__":
    crash.main(SUITE, run)
