"""The webhook worker's hot statements on PostgreSQL are planned once per
connection, not on most calls: a claim and a batch of attempts are each one
call of a function (pg_migrations/0017) whose statements find their rows by
key, so that their generic plans are kept; and those plans use the indexes
behind a backlog, never a scan of the queue."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import asyncpg

from bot.store import Store, open_store
from bot.store.postgres import PostgresStore
from bot.store.postgres import deliveries as pg_deliveries
from tests.store_contract.conftest import Backend
from tests.store_contract.test_ports import T0, attempt, delivery

CALLS = 12
ENDPOINTS = ("main", "spare", "slow")


async def _work(store: Store, calls: int) -> dict[str, str]:
    """The webhook worker's calls, of varying sizes: the statement
    each port ran (the last its connection was sent)."""
    assert isinstance(store, PostgresStore)
    sent: list[str] = []
    async with store._pool.acquire() as conn:
        conn.add_query_logger(lambda record: sent.append(record.query))
    ran = {}

    def last() -> str:  # a transaction's statement, not its BEGIN or COMMIT
        return next(q for q in reversed(sent) if q not in ("BEGIN", "COMMIT", "ROLLBACK"))

    for n in range(1, calls + 1):
        # The queue grows as the calls go on, as the workers' queues do.
        await store.add_deliveries([delivery(endpoint=ENDPOINTS[i % 3]) for i in range(50 * n)],
                                   T0)
        busy = [("acme", ENDPOINTS[n % 3])] if n % 2 else []
        rows = await store.claim_deliveries(T0 + n, n, 30.0, busy)
        assert rows and all((r.subscriber_id, r.endpoint_key) not in busy for r in rows)
        ran["claim"] = last()
        await store.record_attempts([
            attempt(r.id, "delivered", T0 + n, code=200, endpoint=r.endpoint_key) if i % 2
            else attempt(r.id, "retry", T0 + n, code=503, endpoint=r.endpoint_key,
                         next_attempt_at=T0 + 1000) for i, r in enumerate(rows)], T0 + n)
        ran["attempts"] = last()
    return ran


async def test_on_postgres_the_hot_statements_are_planned_once_per_connection(
        postgres: Backend) -> None:
    """The statement each port runs (one, busy endpoints or not) is planned
    for its first five calls at most, then its generic plan is kept, whatever
    the calls' sizes, the busy endpoints and the queue's growth. (PostgreSQL
    keeps a generic plan only if it is estimated no dearer than the custom
    ones were: over the batches' arrays the single statements' were not.)"""
    store = await open_store(postgres.url, pool_size=1)  # one connection, watched
    assert isinstance(store, PostgresStore)
    try:
        ran = await _work(store, CALLS)
        async with store._pool.acquire() as conn:
            plans = {r[0]: (r[1], r[2]) for r in await conn.fetch(
                "SELECT statement, custom_plans, generic_plans FROM pg_prepared_statements")}
    finally:
        await store.close()
    kept = {port: plans[statement] for port, statement in ran.items()}
    assert all(custom <= 5 and generic >= CALLS - 5 for custom, generic in kept.values()), kept


def _relations(node: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Each (node type, relation or "") of a plan's tree."""
    yield node["Node Type"], node.get("Relation Name", "")
    for child in node.get("Plans", []):
        yield from _relations(child)


async def test_on_postgres_the_functions_statements_seek_by_key_behind_a_backlog(
        postgres: Backend) -> None:
    """Each statement inside the functions runs its generic plan (parameters,
    never the call's values) and reads the queues through an index, behind
    thousands of pending deliveries, even when its plan was made
    while the tables were empty (a plan kept is not made again as they grow)."""
    store = await postgres.open()
    conn = await asyncpg.connect(postgres.url)
    notices: list[str] = []
    try:
        claim = (T0, ["acme"], ["slow"], 64, T0, T0 + 30, "test")
        await conn.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
            " SET auto_explain.log_nested_statements = on; SET auto_explain.log_format = json;"
            " SET auto_explain.log_level = notice; SET client_min_messages = notice")
        for _ in range(2):  # on empty tables: the plans are made, and kept
            await conn.fetch(pg_deliveries.CLAIM, *claim)
            await conn.fetch(pg_deliveries.CLAIM, T0, [], [], *claim[3:])
            await conn.execute(pg_deliveries.WRITE_ATTEMPTS, *[[]] * 27)
        await store.add_deliveries([delivery(endpoint=ENDPOINTS[i % 3]) for i in range(3000)],
                                   T0)
        await conn.execute("INSERT INTO webhook_endpoints (subscriber_id, endpoint_key, url)"
                           " SELECT 'acme', key, 'https://hooks.example/acme'"
                           " FROM unnest($1::text[]) AS key", ENDPOINTS)
        conn.add_log_listener(lambda _, message: notices.append(message.message))
        [first, second] = await conn.fetch(pg_deliveries.CLAIM, T0, [], [], 2, T0, T0 + 30,
                                           "test")
        assert len(await conn.fetch(pg_deliveries.CLAIM, *claim)) == 64
        # Two attempts: a 410 that disables its endpoint and fails its other
        # pending deliveries, and a success.
        ids, ats = [first["id"], second["id"]], [T0 + 1, T0 + 1]
        await conn.execute(
            pg_deliveries.WRITE_ATTEMPTS,
            ["acme"], [first["endpoint_key"]], [None], [T0 + 1], [None], [T0 + 1],
            ["HTTP 410 Gone"], ["https://hooks.example/acme"],
            ["acme"], [first["endpoint_key"]], ["endpoint disabled: HTTP 410 Gone"], [T0 + 1],
            ids, ats, ["disabled", "delivered"], [410, 200], [3.5, 3.5], ["", "ok"],
            [None, None],
            ids, ["failed", "delivered"], [1, 1], [410, 200], [None, None], ats, [None, None],
            [None, T0 + 1])
    finally:
        await conn.close()
        await store.close()
    plans = [json.loads(n[n.index("{"):]) for n in notices if n.startswith("duration:")]
    # The statements run inside the functions (not the calls, nor asyncpg's
    # catalog queries for the types it meets).
    nested = [p for p in plans if not re.search("wagate_|pg_catalog", p["Query Text"])]
    queues = {"webhook_deliveries", "webhook_attempts", "webhook_endpoints"}
    nodes = {r for p in nested for r in _relations(p["Plan"])}
    relations = {(node, table) for node, table in nodes if table in queues}
    assert {table for _, table in relations} == queues
    assert not [(node, table) for node, table in relations if node == "Seq Scan"], relations
    # A batch's rows meet their tables' one seek each: no hash or merge join
    # (which would read a whole table, or a whole index).
    assert ("Nested Loop", "") in nodes
    assert not [node for node, _ in nodes if node in ("Hash Join", "Merge Join")], nodes
    assert not [p for p in nested if re.search("'(acme|main|spare|slow)'", json.dumps(p))], \
        nested
