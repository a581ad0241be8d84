"""A claim that skips busy endpoints or numbers looks at a bounded window of the
due rows (rules.py CLAIM_WINDOW), on both stores: a slow endpoint's backlog
(or a paced number's) is never walked by every claim. What lies past the
window waits until the busy ones free up."""

from __future__ import annotations

from bot.effects import OutboundDraft
from bot.store import Store
from bot.store.rules import CLAIM_WINDOW
from tests.store_contract.test_ports import T0, delivery

SLOW = ("acme", "slow")


async def _backlog(store: Store, slow: int) -> str:
    """`slow` due deliveries for the slow endpoint, then one for another: its id."""
    await store.add_deliveries([delivery(endpoint="slow") for _ in range(slow)], T0)
    other = delivery(endpoint="main")
    await store.add_deliveries([other], T0 + 1)
    return other.id


async def test_past_a_busy_endpoints_window_nothing_is_handed_out(store: Store) -> None:
    await _backlog(store, CLAIM_WINDOW + 5)
    assert await store.claim_deliveries(T0 + 2, 10, 30.0, [SLOW]) == []
    assert await store.next_delivery_due([SLOW]) is None
    # Without the exclusion the oldest go first, the slow endpoint's.
    rows = await store.claim_deliveries(T0 + 2, 10, 30.0)
    assert [(r.subscriber_id, r.endpoint_key) for r in rows] == [SLOW] * 10
    assert await store.next_delivery_due() == T0


async def test_within_the_window_another_endpoint_goes_past_a_busy_one(store: Store) -> None:
    other = await _backlog(store, CLAIM_WINDOW - 5)
    [row] = await store.claim_deliveries(T0 + 2, 10, 30.0, [SLOW])
    assert row.id == other
    # The rest is all the slow one's: what comes next is the claimed row's lease end.
    assert await store.next_delivery_due([SLOW]) == T0 + 2 + 30


def _drafts(instance: int, count: int) -> list[OutboundDraft]:
    return [OutboundDraft(instance_id=instance, to="+34600000001", text=f"m{i}")
            for i in range(count)]


async def test_past_a_busy_numbers_window_nothing_is_claimed(store: Store) -> None:
    await store.enqueue(_drafts(2, CLAIM_WINDOW + 5), T0)
    await store.enqueue(_drafts(1, 1), T0 + 1)
    assert await store.claim_outbound(T0 + 2, 10, 60, exclude_instances=[2]) == []
    assert await store.next_outbound_due([2]) is None
    rows = await store.claim_outbound(T0 + 2, 10, 60)
    assert {r.instance_id for r in rows} == {2}


async def test_within_the_window_another_number_goes_past_a_busy_one(store: Store) -> None:
    await store.enqueue(_drafts(2, CLAIM_WINDOW - 5), T0)
    await store.enqueue(_drafts(1, 1), T0 + 1)
    [row] = await store.claim_outbound(T0 + 2, 10, 60, exclude_instances=[2])
    assert row.instance_id == 1
    assert await store.next_outbound_due([2]) == T0 + 2 + 60  # its lease's end
