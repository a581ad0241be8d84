"""The ports whose units a store may write together (group commit): what each
caller sees must be what it would see alone."""

from __future__ import annotations

from bot.store import Store

ES = "+34600000001"
T0 = 1_000_000.0


async def test_a_batch_books_its_slots_at_once(store: Store) -> None:
    # A worker books a claimed batch of four in one call: the first slot is
    # now, and the next booking (this process's or another's) comes four
    # intervals later, not one.
    assert await store.reserve_pace(3, 1.0, 4) < 0.5
    assert 3.5 < await store.reserve_pace(3, 1.0) < 4.5
    assert 4.5 < await store.reserve_pace(3, 1.0, 2) < 5.5

