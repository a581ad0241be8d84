"""What each PostgreSQL connection of the store costs the server once: asyncpg
learns the array types the store sends as the connection opens, in one catalog
query, never again in the middle of a message's statements."""

from __future__ import annotations

import asyncio

from bot.effects import OutboundDraft
from bot.store import open_store
from bot.store.postgres import PostgresStore
from tests.store_contract.conftest import Backend

ES = "+34600000001"
T0 = 1_000_000.0


async def test_a_connection_learns_its_types_once_as_it_opens(postgres: Backend) -> None:
    store = await open_store(postgres.url, pool_size=1)  # one connection, watched
    assert isinstance(store, PostgresStore)
    learnt: list[str] = []
    try:
        async with store._pool.acquire() as conn:
            conn.add_query_logger(lambda record: learnt.append(record.query))
        # Statements sending int4[] (a claim skipping busy numbers), bool[] and
        # float8[] (sent marks), text[] and int8[] (the outbound rows).
        await store.enqueue([OutboundDraft(instance_id=1, to=ES, text=f"m{i}", media=b"\x89P")
                             for i in range(4)], T0)
        rows = await store.claim_outbound(T0, 4, 60, exclude_instances=[7])
        assert len(rows) == 4
        await asyncio.gather(*(store.mark_sent(row.id, f"wamid.c{i}", T0 + 1, keep_media=True)
                               for i, row in enumerate(rows)))
        assert (await store.get_outbound(rows[0].id)).status == "sent"  # type: ignore[union-attr]
    finally:
        await store.close()
    assert learnt, "the connection's statements were not seen"
    assert not [query for query in learnt if "typeinfo_tree" in query]
