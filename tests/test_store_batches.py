"""Group commit's batching (bot/store/postgres/batches.py): a unit that fails
fails alone, the others of its batch are written; each caller gets its own
unit's result."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.postgres.batches import Batches


async def test_a_failing_unit_fails_alone_and_the_rest_are_written() -> None:
    written: list[list[int]] = []

    async def write(units: list[int]) -> list[str]:
        await asyncio.sleep(0)
        if 3 in units:
            raise ValueError("unit 3 is bad")
        written.append(units)
        return [f"r{unit}" for unit in units]

    batches = Batches(write, asyncio.ensure_future)
    results = await asyncio.gather(*(batches.add(i) for i in range(6)), return_exceptions=True)
    assert [r if isinstance(r, str) else type(r).__name__ for r in results] == [
        "r0", "r1", "r2", "ValueError", "r4", "r5"]
    # All six went as one batch, which failed; then each went alone.
    assert written == [[0], [1], [2], [4], [5]]
    with pytest.raises(ValueError, match="unit 3"):
        await batches.add(3)
    assert await batches.add(7) == "r7"
    assert written[-1] == [7]
    # Units that arrive while a batch is being written go together in the next.
    results = await asyncio.gather(*(batches.add(i) for i in range(10, 14)))
    assert results == ["r10", "r11", "r12", "r13"] and written[-1] == [10, 11, 12, 13]
