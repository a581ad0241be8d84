"""A claim that skips busy endpoints or numbers still hands out every other
one's due rows, oldest first, however long the busy ones' backlogs are, on both
stores ("a slow endpoint does not delay others", docs/receiving.md); and what
it costs does not grow with those backlogs (bot/store/*/groups.py)."""

from __future__ import annotations

import json

import asyncpg

from bot.effects import OutboundDraft
from bot.store import Store
from bot.store.postgres import deliveries as pg_deliveries
from bot.store.postgres import outbound as pg_outbound
from tests.store_contract.conftest import Backend
from tests.store_contract.test_ports import T0, attempt, delivery

SLOW = ("acme", "slow")
BACKLOG = 5000


async def _backlog(store: Store, slow: int) -> str:
    """`slow` due deliveries for the slow endpoint, then one for another: its id."""
    await store.add_deliveries([delivery(endpoint="slow") for _ in range(slow)], T0)
    other = delivery(endpoint="main")
    await store.add_deliveries([other], T0 + 1)
    return other.id


async def test_past_a_busy_endpoints_backlog_another_endpoint_is_handed_out(
        store: Store) -> None:
    other = await _backlog(store, BACKLOG)
    assert await store.next_delivery_due([SLOW]) == T0 + 1
    [row] = await store.claim_deliveries(T0 + 2, 10, 30.0, [SLOW])
    assert row.id == other
    # Nothing else is due but the slow one's: what comes next is the lease's end.
    assert await store.next_delivery_due([SLOW]) == T0 + 2 + 30
    assert await store.claim_deliveries(T0 + 2, 10, 30.0, [SLOW]) == []
    # Without the exclusion the oldest go first, the slow endpoint's.
    rows = await store.claim_deliveries(T0 + 2, 10, 30.0)
    assert [(r.subscriber_id, r.endpoint_key) for r in rows] == [SLOW] * 10
    assert await store.next_delivery_due() == T0


async def test_the_other_endpoints_rows_go_oldest_first(store: Store) -> None:
    await store.add_deliveries([delivery(endpoint="slow") for _ in range(20)], T0)
    late, early = delivery(subscriber="beta"), delivery(subscriber="acme", endpoint="main")
    await store.add_deliveries([late], T0 + 3)
    await store.add_deliveries([early], T0 + 1)
    waiting = delivery(subscriber="gamma")
    await store.add_deliveries([waiting], T0 + 50)  # not yet due
    rows = await store.claim_deliveries(T0 + 5, 10, 30.0, [SLOW])
    assert [r.id for r in rows] == [early.id, late.id]
    assert await store.next_delivery_due([SLOW]) == T0 + 5 + 30
    # Due by later, with the others' leased rows' endpoints busy too.
    busy = [SLOW, ("acme", "main"), ("beta", "main")]
    assert await store.next_delivery_due(busy) == T0 + 50
    [first] = await store.claim_deliveries(T0 + 5, 1, 30.0, busy, due_by=T0 + 50)
    assert first.id == waiting.id


async def test_a_disabled_endpoints_rows_are_failed_not_handed_out(store: Store) -> None:
    """A delivery in flight when its endpoint was disabled comes due again after
    its lease: a claim skipping a busy endpoint fails it too."""
    await store.add_deliveries([delivery(endpoint="slow") for _ in range(50)], T0)
    in_flight, gone = delivery(), delivery()
    await store.add_deliveries([in_flight, gone], T0 + 1)
    claimed = await store.claim_deliveries(T0 + 1, 2, 30.0, [SLOW])
    assert {r.id for r in claimed} == {in_flight.id, gone.id}
    await store.record_attempts([attempt(gone.id, "disabled", T0 + 2, code=410)], T0 + 2)
    fresh = delivery(subscriber="beta")
    await store.add_deliveries([fresh], T0 + 3)
    [row] = await store.claim_deliveries(T0 + 40, 10, 30.0, [SLOW])
    assert row.id == fresh.id
    left, _ = await store.get_delivery(in_flight.id)
    assert (left.status, left.last_error) == ("failed", "endpoint disabled: HTTP 410 Gone")


async def test_behind_a_backlog_claims_keep_each_endpoints_order_and_skip_the_busy(
        store: Store) -> None:
    """Claims of a few rows at a time, one endpoint busy behind its backlog:
    every other endpoint's due rows are handed out once each, oldest first
    across endpoints and in each endpoint's own order, none of the busy one's;
    the rows not yet due wait; each claim's lease holds its rows back."""
    await store.add_deliveries([delivery(endpoint="slow") for _ in range(BACKLOG)], T0)
    due: list[tuple[float, str, str]] = []
    for i in range(30):  # three endpoints, their rows interleaved in time
        row = delivery(subscriber=("acme", "beta", "gamma")[i % 3])
        await store.add_deliveries([row], T0 + 1 + i)
        due.append((T0 + 1 + i, row.id, row.subscriber_id))
    late = delivery(subscriber="beta")
    await store.add_deliveries([late], T0 + 100)
    handed: list[tuple[float, str, str]] = []
    while rows := await store.claim_deliveries(T0 + 50, 4, 30.0, [SLOW]):
        assert len(rows) <= 4
        assert [r.next_attempt_at for r in rows] == sorted(r.next_attempt_at for r in rows)
        handed += [(r.next_attempt_at, r.id, r.subscriber_id) for r in rows]
    assert handed == due
    # Leased until T0 + 80, then due again (the late one not yet).
    assert await store.claim_deliveries(T0 + 79, 100, 30.0, [SLOW]) == []
    again = await store.claim_deliveries(T0 + 80, 100, 30.0, [SLOW])
    assert sorted(r.id for r in again) == sorted(row_id for _, row_id, _ in due)
    [first] = await store.claim_deliveries(T0 + 100, 1, 30.0, [SLOW])
    assert first.id == late.id


async def test_a_claim_with_no_endpoint_busy_fails_a_disabled_endpoints_rows_too(
        store: Store) -> None:
    in_flight, gone, other = delivery(), delivery(), delivery(subscriber="beta")
    await store.add_deliveries([in_flight, gone], T0)
    await store.add_deliveries([other], T0 + 1)
    assert len(await store.claim_deliveries(T0 + 1, 2, 30.0)) == 2
    await store.record_attempts([attempt(gone.id, "disabled", T0 + 2, code=410)], T0 + 2)
    # The in-flight row, leased past the disabling, comes due with its lease:
    # failed then, and only the other endpoint's row is handed out.
    assert [r.id for r in await store.claim_deliveries(T0 + 40, 10, 30.0)] == [other.id]
    left, _ = await store.get_delivery(in_flight.id)
    assert (left.status, left.last_error, left.updated_at) == (
        "failed", "endpoint disabled: HTTP 410 Gone", T0 + 40)


def _drafts(instance: int, count: int) -> list[OutboundDraft]:
    return [OutboundDraft(instance_id=instance, to="+34600000001", text=f"m{i}")
            for i in range(count)]


async def test_past_a_busy_numbers_backlog_another_number_is_claimed(store: Store) -> None:
    await store.enqueue(_drafts(2, BACKLOG), T0)
    await store.enqueue(_drafts(3, 1), T0 + 2)
    await store.enqueue(_drafts(1, 1), T0 + 1)
    assert await store.next_outbound_due([2]) == T0 + 1
    [oldest] = await store.claim_outbound(T0 + 3, 1, 60, exclude_instances=[2])
    assert oldest.instance_id == 1
    [then] = await store.claim_outbound(T0 + 3, 10, 60, exclude_instances=[2])
    assert then.instance_id == 3
    assert await store.next_outbound_due([2]) == T0 + 3 + 60  # their leases' end
    assert await store.claim_outbound(T0 + 3, 10, 60, exclude_instances=[2]) == []
    # Without the exclusion the oldest go first, in the number's order.
    rows = await store.claim_outbound(T0 + 3, 10, 60)
    assert [(r.instance_id, r.text) for r in rows] == [(2, f"m{i}") for i in range(10)]


async def _buffers(conn: asyncpg.Connection, sql: str, *args: object) -> int:
    """Shared buffers (hit or read) the statement touches, run and rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        [plan] = json.loads(await conn.fetchval(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args))
    finally:
        await tx.rollback()
    top = plan["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


async def _grow(store: Store, endpoint: str, instance: int, count: int) -> None:
    await store.add_deliveries([delivery(endpoint=endpoint) for _ in range(count)], T0)
    await store.enqueue(_drafts(instance, count), T0)


async def test_on_postgres_a_busy_backlog_adds_no_cost(postgres: Backend) -> None:
    """The statements the workers run while one endpoint (number) is busy touch
    as many buffers behind 500 of its rows as behind 5,000."""
    store = await postgres.open()
    conn = await asyncpg.connect(postgres.url)
    try:
        await store.add_deliveries([delivery(endpoint="main")], T0 + 1)
        await store.enqueue(_drafts(1, 1), T0 + 1)
        # The claim's function is compiled by its first call in a session:
        # its catalog reads are not the claim's.
        await _buffers(conn, pg_deliveries.CLAIM, T0 + 2, [], [], 0, T0 + 2, T0 + 32, "test")
        costs = []
        for backlog in (500, BACKLOG):
            await _grow(store, "slow", 2, backlog - (0 if not costs else 500))
            for table in ("webhook_deliveries", "outbound"):
                await conn.execute(f"VACUUM ANALYZE {table}")
            costs.append([
                await _buffers(conn, pg_deliveries.CLAIM, T0 + 2, ["acme"], ["slow"],
                               10, T0 + 2, T0 + 32, "test"),
                await _buffers(conn, pg_deliveries.NEXT_DUE_SKIPPING, ["acme"], ["slow"]),
                await _buffers(conn, pg_outbound.CLAIM_SKIPPING, T0 + 2, [2], 10, T0 + 62,
                               "test"),
                await _buffers(conn, pg_outbound.NEXT_DUE_SKIPPING, [2]),
                await _buffers(conn, pg_outbound.NEXT_DUE)])
        # A seek may cross one more index level behind the longer backlog; a
        # walk of it would touch a hundred pages more.
        small, large = costs
        assert all(b <= a + 10 for a, b in zip(small, large, strict=True)), costs
    finally:
        await conn.close()
        await store.close()
