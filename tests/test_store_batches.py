"""Group commit's batching (bot/store/postgres/batches.py): a unit that fails
fails alone, the others of its batch are written."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.postgres.batches import Batches


async def test_a_failing_unit_fails_alone_and_the_rest_are_written() -> None:
    written: list[list[int]] = []

    async def write(units: list[int]) -> None:
        await asyncio.sleep(0)
        if 3 in units:
            raise ValueError("unit 3 is bad")
        written.append(units)

    batches = Batches(write, asyncio.ensure_future)
    results = await asyncio.gather(*(batches.add(i) for i in range(6)), return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["NoneType"] * 3 + ["ValueError"] + [
        "NoneType"] * 2
    assert written[0] == [0]  # the first goes at once, alone
    assert sorted(u for batch in written for u in batch) == [0, 1, 2, 4, 5]
    with pytest.raises(ValueError, match="unit 3"):
        await batches.add(3)
    await batches.add(7)
    assert written[-1] == [7]
