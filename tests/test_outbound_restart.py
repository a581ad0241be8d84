"""Queued messages survive a restart: what was accepted is sent after it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient

from bot.effects import OutboundDraft
from bot.store import SqliteStore
from tests.conftest import outbox, wait_for
from tests.graph import GraphState


async def test_queued_before_start_is_sent_after(tmp_path: Path,
                                                 make_client: Callable[..., Awaitable[TestClient]],
                                                 graph_state: GraphState) -> None:
    # A previous run accepted these and stopped before sending them; one was
    # even claimed by a worker that died (its lease has run out).
    store = await SqliteStore.open(str(tmp_path / "wagate.db"))
    await store.enqueue([OutboundDraft(instance_id=1, to="+34600000001", text="queued 1"),
                         OutboundDraft(instance_id=2, to="+34600000002", text="queued 2")],
                        time.time())
    claimed = await store.claim_outbound(time.time(), 1, lease=0.0)
    assert len(claimed) == 1
    await store.close()

    client = await make_client()
    sent = await outbox(client, to="+34600000001")
    assert [(m["text"], m["status"]) for m in sent] == [("queued 1", "sent")]
    graph_sent = await wait_for(lambda: graph_state.messages)
    assert graph_sent[0].json["text"]["body"] == "queued 2"
