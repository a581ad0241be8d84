"""Queued messages survive a restart: what was accepted is sent after it."""

from __future__ import annotations

import asyncio
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


SLOW_NUMBER = """
[[instances]]
id = 3
number = "+15550003333"
provider = "sandbox"
rate_per_second = 1
"""


async def test_a_slow_number_does_not_hold_up_the_others(
        make_client: Callable[..., Awaitable[TestClient]]) -> None:
    from bot.web.keys import outbound_worker_key, store_key

    client = await make_client(SLOW_NUMBER)
    store = client.app[store_key]
    await store.enqueue([OutboundDraft(instance_id=3, to="+34600000003", text=f"slow {i}")
                         for i in range(30)], time.time())
    client.app[outbound_worker_key].notify()
    await asyncio.sleep(0.2)
    await store.enqueue([OutboundDraft(instance_id=1, to="+34600000001", text="fast")],
                        time.time())
    client.app[outbound_worker_key].notify()

    async def fast_sent() -> bool:
        rows = await store.list_outbox(instance_id=1, to="+34600000001", limit=5)
        return bool(rows) and rows[0].status == "sent"

    await wait_for(fast_sent, timeout=2.0)
    slow = await store.list_outbox(instance_id=3, to=None, limit=100)
    assert sum(r.status == "queued" for r in slow) >= 25  # still pacing at 1/s


async def test_claims_of_a_killed_run_are_sent_at_start_not_after_their_lease(
        tmp_path: Path, make_client: Callable[..., Awaitable[TestClient]],
        graph_state: GraphState) -> None:
    # A run killed a moment ago had claimed this message: its lease still has
    # two minutes to go. Only one process serves the file, so the claim is a
    # dead process's and the message goes out as soon as the service is up.
    store = await SqliteStore.open(str(tmp_path / "wagate.db"))
    await store.enqueue([OutboundDraft(instance_id=2, to="+34600000002", text="held by the dead")],
                        time.time())
    assert len(await store.claim_outbound(time.time(), 1, lease=120.0, )) == 1
    await store.close()

    client = await make_client()
    sent = await outbox(client, to="+34600000002")
    assert [(m["text"], m["status"]) for m in sent] == [("held by the dead", "sent")]
    assert [m.json["text"]["body"] for m in graph_state.messages] == ["held by the dead"]


async def test_a_holder_releases_its_own_claims_only(tmp_path: Path) -> None:
    # Where several processes share a store, a restarted one frees what its
    # earlier run held and leaves a live neighbour's claims alone.
    store = await SqliteStore.open(str(tmp_path / "wagate.db"))
    try:
        now = time.time()
        await store.enqueue([OutboundDraft(instance_id=1, to="+34600000001", text="a"),
                             OutboundDraft(instance_id=1, to="+34600000001", text="b")], now)
        assert len(await store.claim_outbound(now, 1, 120.0, holder="host:1")) == 1
        assert len(await store.claim_outbound(now, 1, 120.0, holder="host:2")) == 1
        assert await store.release_claims("host:1") == 1
        again = await store.claim_outbound(time.time(), 10, 120.0, holder="host:1")
        assert [row.text for row in again] == ["a"]
        assert await store.release_claims() == 2  # every claim, as at a SQLite start
    finally:
        await store.close()
