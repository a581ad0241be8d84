"""What a queued message costs the outbound table: a claim writes its lease
only (on PostgreSQL a HOT update, no index entry), a lease nobody finishes
still runs out (a delivery's too, whose claim moves its due time), and a
status finds its message by provider id in an index that holds no queued row."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from bot.effects import OutboundDraft
from bot.store import Store
from bot.store.postgres import outbound as pg_outbound
from tests.store_contract.conftest import Backend
from tests.store_contract.test_ports import T0, delivery

NUMBER = "+34600000001"


def _drafts(instance: int, to: str, count: int) -> list[OutboundDraft]:
    return [OutboundDraft(instance_id=instance, to=to, text=f"m{i}") for i in range(count)]


async def test_a_numbers_outbox_and_history_span_its_instances(store: Store) -> None:
    for n, instance in enumerate((3, 1, 2)):
        await store.enqueue(_drafts(instance, NUMBER, 1), T0 + n)
        await store.enqueue(_drafts(instance, "+34600000002", 1), T0 + n)
    rows = await store.list_outbox(instance_id=None, to=NUMBER, limit=10)
    assert [(r.instance_id, r.to) for r in rows] == [(3, NUMBER), (1, NUMBER), (2, NUMBER)]
    newest = await store.list_outbox(instance_id=None, to=NUMBER, limit=2)
    assert [r.instance_id for r in newest] == [1, 2]
    log = await store.list_messages(direction="out", instance_id=None, number=NUMBER, limit=10)
    assert [(m.instance_id, m.number, m.at) for m in log] == [
        (3, NUMBER, T0), (1, NUMBER, T0 + 1), (2, NUMBER, T0 + 2)]
    assert await store.list_outbox(instance_id=None, to="+34600000009", limit=10) == []


async def test_a_lease_nobody_finishes_runs_out(store: Store) -> None:
    await store.enqueue(_drafts(1, NUMBER, 3), T0)
    claimed = await store.claim_outbound(T0 + 1, 2, 30, holder="gone")
    assert len(claimed) == 2
    # The third is due; the leased two come due again at their lease's end.
    [third] = await store.claim_outbound(T0 + 2, 10, 30, holder="alive")
    assert third.id not in {r.id for r in claimed}
    assert await store.next_outbound_due() == T0 + 31
    assert await store.next_outbound_due([2]) == T0 + 31
    assert await store.claim_outbound(T0 + 30, 10, 30, holder="alive") == []
    again = await store.claim_outbound(T0 + 31, 10, 30, holder="alive")
    assert sorted(r.id for r in again) == sorted(r.id for r in claimed)
    # The crashed holder's release frees nothing now.
    assert await store.release_claims("gone") == 0
    assert await store.release_claims("alive") == 3


async def test_a_delivery_lease_nobody_finishes_runs_out(store: Store) -> None:
    await store.add_deliveries([delivery() for _ in range(3)], T0)
    claimed = await store.claim_deliveries(T0 + 1, 2, 30, holder="gone")
    [third] = await store.claim_deliveries(T0 + 2, 10, 30, holder="alive")
    assert third.id not in {r.id for r in claimed}
    assert await store.next_delivery_due() == T0 + 31
    assert await store.next_delivery_due([("beta", "main")]) == T0 + 31
    # The operator sees one being sent due again when its lease ends.
    shown, _ = await store.get_delivery(claimed[0].id)
    assert shown.next_attempt_at == T0 + 31
    assert await store.claim_deliveries(T0 + 30, 10, 30, holder="alive") == []
    again = await store.claim_deliveries(T0 + 31, 10, 30, holder="alive")
    assert sorted(r.id for r in again) == sorted(r.id for r in claimed)
    assert await store.release_delivery_claims("gone") == 0
    assert await store.release_delivery_claims("alive") == 3


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", ()):
        nodes += _plan_nodes(child)
    return nodes


async def _explain(conn: asyncpg.Connection, sql: str, *args: Any, table: str = "outbound"
                   ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The plan's nodes, and what the statement changed in `table` (updates,
    HOT updates), run in a transaction rolled back."""
    # The counters also hold this connection's earlier transactions not yet
    # reported: what the statement changed is the difference.
    changes = ("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
               f" WHERE relname = '{table}' AND schemaname = current_schema()")
    tx = conn.transaction()
    await tx.start()
    try:
        before = await conn.fetchrow(changes)
        [plan] = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))
        after = await conn.fetchrow(changes)
    finally:
        await tx.rollback()
    changed = {key: after[key] - before[key] for key in after.keys()}
    return _plan_nodes(plan["Plan"]), changed


def _indexes(nodes: list[dict[str, Any]]) -> set[str]:
    """The indexes a plan reads (a plan that reads the table whole: none)."""
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes
    return {n["Index Name"] for n in nodes if "Index Name" in n}


async def test_on_postgres_claims_are_hot_and_statuses_use_the_index(postgres: Backend) -> None:
    store = await postgres.open()
    conn = await asyncpg.connect(postgres.url)
    try:
        for instance in (1, 2, 3):
            await store.enqueue(_drafts(instance, f"+4915000{instance:04d}", 1000), T0)
        await conn.execute("ANALYZE outbound")
        # A claim's versions of its rows are HOT: no index takes an entry (the
        # pages filled by inserts keep room for them). Each claim is rolled
        # back and the next takes the same rows: two claims of two rows fit in
        # a page's room without its pruning (which a vacuum's pin can defer).
        for statement, busy in ((pg_outbound.CLAIM_SKIPPING, [2]), (pg_outbound.CLAIM, [])):
            _, changed = await _explain(conn, statement, T0 + 1, busy, 2, T0 + 61, "test")
            assert changed == {"n_tup_upd": 2, "n_tup_hot_upd": 2}
        sent = await store.claim_outbound(T0 + 1, 50, 60)
        for row in sent:
            await store.mark_sent(row.id, f"wamid.{row.id}", T0 + 2)
        await conn.execute("VACUUM ANALYZE outbound")

        # A status by its provider id, one or several (a reply's context).
        provider_id = f"wamid.{sent[0].id}"
        for sql, args in (
                ("SELECT id, status FROM outbound WHERE provider_message_id = $1",
                 [provider_id]),
                ("SELECT provider_message_id, id FROM outbound"
                 " WHERE provider_message_id = ANY($1::text[]) AND instance_id = $2",
                 [[provider_id, "wamid.none"], 1])):
            nodes, _ = await _explain(conn, sql, *args)
            assert _indexes(nodes) == {"outbound_provider_id"}
    finally:
        await conn.close()
        await store.close()
