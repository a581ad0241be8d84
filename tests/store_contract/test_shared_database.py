"""What holds when several processes share one PostgreSQL database: each store
here is what one process opens (its own pool and worker id)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.effects import OutboundDraft
from bot.store import StoreUnavailable, open_store
from bot.store.postgres import MIGRATIONS, PostgresStore
from bot.store.postgres import holds as postgres_holds
from tests.store_contract import test_media_ports as media
from tests.store_contract.conftest import Backend
from tests.store_contract.test_batched_ports import sent_event
from tests.store_contract.test_ports import (
    DAY,
    DE,
    ES,
    T0,
    api_send,
    attempt,
    booked_slots,
    delivery,
    limits,
    message,
    registered,
)


@pytest.fixture
async def two(postgres: Backend) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    first = await PostgresStore.open(postgres.url, worker_id="host-a:1")
    second = await PostgresStore.open(postgres.url, worker_id="host-b:2")
    yield first, second
    await first.close()
    await second.close()


async def test_processes_opening_at_once_migrate_once(postgres: Backend) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(postgres.url) for _ in range(4)))
    for store in stores:
        await store.close()
    conn = await asyncpg.connect(postgres.url)
    try:
        assert await conn.fetch("SELECT version FROM schema_version") == [(len(MIGRATIONS),)]
    finally:
        await conn.close()


async def test_a_start_releases_its_own_claims_only(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    now = time.time()
    await a.enqueue([OutboundDraft(instance_id=1, to=ES, text=f"m{n}") for n in range(3)], now)
    mine = await a.claim_outbound(now, 2, 600)
    theirs = await b.claim_outbound(now, 10, 600)
    assert len(mine) == 2 and len(theirs) == 1
    assert await b.release_claims() == 1  # b restarts: its own claim is due at once
    assert [r.id for r in await a.claim_outbound(time.time(), 10, 600)] == [theirs[0].id]
    # a's claims stay a's (a is alive) until their lease ends.
    assert await b.claim_outbound(time.time(), 10, 600) == []
    assert {r.id for r in await b.claim_outbound(now + 600, 10, 600)} == {r.id for r in mine}

    await a.add_deliveries([delivery(), delivery()], now)
    [held_by_a] = await a.claim_deliveries(now, 1, 600)
    [held_by_b] = await b.claim_deliveries(now, 1, 600)
    assert await a.release_delivery_claims() == 1
    assert [d.id for d in await b.claim_deliveries(time.time(), 10, 600)] == [held_by_a.id]
    assert held_by_b.id != held_by_a.id


async def test_concurrent_claims_never_hand_out_a_row_twice(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    await a.enqueue([OutboundDraft(instance_id=1, to=ES, text=f"m{n}") for n in range(200)], T0)
    await a.add_deliveries([delivery(endpoint=f"e{n % 20}") for n in range(200)], T0)

    async def drain(store: PostgresStore, kind: str) -> list[str]:
        got: list[str] = []
        for _ in range(200):  # bounded: 200 rows in batches of 7 take at most 29
            if kind == "outbound":
                rows = [r.id for r in await store.claim_outbound(T0, 7, 600)]
            else:
                rows = [r.id for r in await store.claim_deliveries(T0, 7, 600)]
            if not rows:
                return got
            got += rows
        raise AssertionError("the queue never emptied")

    for kind in ("outbound", "deliveries"):
        lists = await asyncio.gather(*(drain(store, kind) for store in (a, b, a, b)))
        every = [row for rows in lists for row in rows]
        assert len(every) == len(set(every)) == 200, kind


async def test_quotas_are_exact_across_processes(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    numbers = [f"+3460000{n:04d}" for n in range(20)]
    for number in numbers:
        await a.commit_inbound(registered(message(sender=number), reply=None), T0)
    await a.commit_inbound(registered(message(sender=ES), reply=None), T0)
    outcomes = await asyncio.gather(*(
        (a, b)[n % 2].accept_send(api_send(text=f"n{n}"), group_name=None,
                                  limits=limits(messages=10), now=T0 + 1)
        for n in range(50)))
    assert sorted(o.status for o in outcomes) == ["queued"] * 10 + ["quota_exceeded"] * 40
    # New recipients against a total of 5, from both processes at once.
    outcomes = await asyncio.gather(*(
        (a, b)[n % 2].accept_send(api_send(to=number, subscriber="beta"), group_name=None,
                                  limits=limits(messages=100, recipients=5), now=T0 + 1)
        for n, number in enumerate(numbers)))
    assert sorted(o.status for o in outcomes) == ["queued"] * 5 + ["recipient_limit"] * 15
    assert (await b.send_usage("beta", 86400, T0 + 2)).recipients == 5


async def test_attempts_on_one_endpoint_apply_one_after_another(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    """Failures recorded at once by two processes, the later ones past the
    endpoint's limit: each is logged once, and the endpoint is disabled once."""
    a, b = two
    drafts = [delivery() for _ in range(20)]
    await a.add_deliveries(drafts, T0)
    rows = await a.claim_deliveries(T0, 10, 600) + await b.claim_deliveries(T0, 10, 600)
    assert len(rows) == 20
    # The first failure starts the clock; the other 19, recorded at once by both
    # processes, are all past the limit, in whatever order they get the endpoint:
    # the first to apply disables it, the rest find it disabled. (Times given out
    # of order would make which one crosses the limit depend on that order.)
    first, *rest = rows
    [(_, reason)] = await a.record_attempts([
        attempt(first.id, "retry", T0, code=503, next_attempt_at=T0 + 7 * DAY)], T0)
    assert reason is None
    late = T0 + 6 * DAY
    results = await asyncio.gather(*(
        (a, b)[n % 2].record_attempts([
            attempt(row.id, "retry", late, code=503, next_attempt_at=late + DAY)], late)
        for n, row in enumerate(rest)))
    assert sum(reason is not None for [(_, reason)] in results) == 1
    for row in rows:
        got = await b.get_delivery(row.id)
        assert got is not None and len(got[1]) == 1 and got[0].attempts == 1
    [health] = await a.list_endpoint_health()
    assert health.disabled_at is not None and health.failing_since is not None


async def test_sent_marks_from_two_processes_tell_each_message_once(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    """Both processes mark the same 30 messages at once (a lease ran out: both
    sent), each mark with its sent event, in batches: one event per message,
    none for a message that failed before its marks came; and the other
    process is woken for them."""
    a, b = two
    woken = asyncio.Event()
    await b.on_work("deliveries", woken.set)
    await a.enqueue([OutboundDraft(instance_id=1, to=ES, text=f"m{n}", subscriber_id="acme")
                     for n in range(30)], T0)
    rows = await a.claim_outbound(T0, 30, 600)
    failed = {rows[n].id for n in range(0, 30, 7)}
    for row_id in failed:
        await b.mark_failed(row_id, 131026, "Message undeliverable", T0)
    await asyncio.gather(*(store.mark_sent(row.id, f"wamid.x{n}", T0 + 1,
                                           deliveries=[sent_event(row.id, mark)])
                           for n, row in enumerate(rows)
                           for mark, store in enumerate((a, b))))
    told = await b.list_deliveries(status="pending", subscriber_id="acme",
                                   endpoint_key="main", limit=100)
    by_message = collections.Counter(d.id.rsplit("-", 1)[0].removeprefix("sent-")
                                     for d in told)
    assert by_message == {row.id: 1 for row in rows if row.id not in failed}
    for row in rows:
        history = [e.status for e in await a.status_history(row.id)]
        assert history.count("sent") == (row.id not in failed)
    await asyncio.wait_for(woken.wait(), 10)


async def test_photos_fetched_by_two_processes_at_once_each_end_once(
        two: tuple[PostgresStore, PostgresStore], postgres: Backend) -> None:
    """Both processes end the same 12 fetches at once (a lease ran out: both
    fetched), each in its batches: each file kept byte for byte, each delivery
    released once in all, the other process woken for them, and what each
    process tells of a file (for its link) is what the database says."""
    a, b = two
    woken = asyncio.Event()
    await b.on_work("deliveries", woken.set)
    ends = await media.photos(a, 300, 12)
    assert len(await a.claim_media(media.T0, 20, 1.0, "host-a:1")) == 12
    assert len(await b.claim_media(media.T0 + 1, 20, 30.0, "host-b:2")) == 12
    answers = await asyncio.gather(*(store.finish_media(e.media_id, e.result, media.T0 + 2)
                                     for e in ends for store in (a, b)))
    released = [answers[n] + answers[n + 1] for n in range(0, len(answers), 2)]
    await media.each_ended_once(b, ends, released)
    await asyncio.wait_for(woken.wait(), 10)
    third = await PostgresStore.open(postgres.url, worker_id="host-c:3")
    try:
        for end in ends:
            told = await third.media_info(end.media_id)
            assert told is not None
            assert await a.media_info(end.media_id) == told == await b.media_info(end.media_id)
    finally:
        await third.close()


async def test_calls_of_many_attempts_on_two_endpoints_from_two_processes(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    """Calls of several attempts each, on two endpoints in either order, from
    both processes at once, all past the endpoints' limit: each attempt is
    logged once, each endpoint is disabled once (its waiting deliveries failed),
    and no call waits on another forever."""
    a, b = two
    drafts = [delivery(endpoint=("main", "spare")[n % 2]) for n in range(40)]
    await a.add_deliveries(drafts, T0)
    rows = await a.claim_deliveries(T0, 20, 600) + await b.claim_deliveries(T0, 20, 600)
    assert len(rows) == 40
    waiting = [delivery(endpoint="main"), delivery(endpoint="spare")]
    await a.add_deliveries(waiting, T0)
    first = [rows[0], next(r for r in rows if r.endpoint_key != rows[0].endpoint_key)]
    await a.record_attempts([attempt(r.id, "retry", T0, code=503, endpoint=r.endpoint_key,
                                     next_attempt_at=T0 + DAY) for r in first], T0)
    rest = [r for r in rows if r not in first]
    late = T0 + 6 * DAY
    calls = [rest[n:n + 4] if n % 8 else rest[n:n + 4][::-1] for n in range(0, len(rest), 4)]
    results = await asyncio.gather(*(
        (a, b)[n % 2].record_attempts([
            attempt(r.id, "retry", late, code=503, endpoint=r.endpoint_key,
                    next_attempt_at=late + DAY) for r in call], late + 700)
        for n, call in enumerate(calls)))
    reasons = [reason for call in results for _, reason in call if reason is not None]
    assert len(reasons) == 2 and all(r.startswith("failing for") for r in reasons)
    for row in rows:
        got = await b.get_delivery(row.id)
        assert got is not None and len(got[1]) == 1 and got[0].attempts == 1
        assert got[0].status == "failed"  # by its attempt, or as the endpoint's waiting one
    for row in waiting:
        got = await b.get_delivery(row.id)
        assert got is not None and got[0].status == "failed" and got[1] == []
    assert all(e.disabled_at == late + 700 for e in await a.list_endpoint_health())


async def test_a_chat_is_decided_by_one_process_at_a_time(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    """Process a reads the chat's state and decides; process b, reading the same
    chat meanwhile, waits and then sees what a committed (a registration), so it
    cannot send a second confirmation."""
    a, b = two
    before = await a.load_inbound_context(1, ES, None)
    assert before.registration is None
    other = asyncio.create_task(b.load_inbound_context(1, ES, None))
    await asyncio.sleep(0.1)  # b is waiting for the chat (were it not, it read no registration)
    # Another chat is not held up.
    assert (await b.load_inbound_context(1, DE, None)).registration is None
    await a.commit_inbound(registered(message()), T0)
    after = await other
    assert after.registration is not None and after.last_auto_reply_at == T0
    # b decides it is a repeat and commits without a reply; the chat is free again.
    await b.commit_inbound(registered(message(), reply=None), T0 + 1)
    assert [r.text for r in await a.list_outbox(instance_id=1, to=ES, limit=10)] == [
        "registered"]
    assert (await a.load_inbound_context(1, ES, None)).registration is not None


async def test_a_chat_whose_message_never_commits_is_let_go(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    await a.load_inbound_context(1, ES, None)  # its handler failed: no commit follows
    await a.load_inbound_context(1, ES, None)  # the chat's next message in that process
    await a.commit_inbound(registered(message()), T0)
    assert (await b.load_inbound_context(1, ES, None)).registration is not None
    await b.close()  # a process that stops lets its chats go
    assert (await a.load_inbound_context(1, ES, None)).registration is not None


async def test_a_chat_held_too_long_is_let_go(two: tuple[PostgresStore, PostgresStore],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A message whose handling hangs between read and commit holds its chat
    for CHAT_HOLD_TIMEOUT at most; then other processes may go on."""
    monkeypatch.setattr(postgres_holds, "CHAT_HOLD_TIMEOUT", 0.2)
    a, b = two
    await a.load_inbound_context(1, ES, None)
    await asyncio.wait_for(b.load_inbound_context(1, ES, None), 10)
    await b.commit_inbound(registered(message()), T0)
    # a's message, handled at last, commits in a transaction (and chat hold) of its own.
    assert await a.commit_inbound(registered(message(), reply=None), T0 + 1)
    assert [r.text for r in await a.list_outbox(instance_id=1, to=ES, limit=10)] == [
        "registered"]


async def test_queued_work_wakes_the_other_processes(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    outbound, deliveries = asyncio.Event(), asyncio.Event()
    await b.on_work("outbound", outbound.set)
    await b.on_work("deliveries", deliveries.set)
    await a.enqueue([OutboundDraft(instance_id=1, to=ES, text="x")], T0)
    await asyncio.wait_for(outbound.wait(), 10)
    assert not deliveries.is_set()
    await a.add_deliveries([delivery()], T0)
    await asyncio.wait_for(deliveries.wait(), 10)


async def test_a_burst_of_commits_wakes_the_others_less_often_but_after_the_last(
        own_database: str) -> None:
    # NOTIFY is coalesced (one per queue per window from a process), and the
    # work of the burst's last commit is still announced: a wake-up comes when
    # all 40 messages can be seen.
    a, b = await PostgresStore.open(own_database), await PostgresStore.open(own_database)
    try:
        seen: list[int] = []
        reads: list[asyncio.Task[None]] = []
        all_seen = asyncio.Event()

        async def look() -> None:
            seen.append((await b.queue_depth())[0])
            if seen[-1] == 40:
                all_seen.set()

        await b.on_work("outbound", lambda: reads.append(asyncio.ensure_future(look())))
        await asyncio.gather(*(a.enqueue([OutboundDraft(instance_id=1, to=ES, text=f"x{i}")],
                                         T0) for i in range(40)))
        await asyncio.wait_for(all_seen.wait(), 10)
        await asyncio.gather(*reads)
        assert len(seen) < 40  # not one wake-up per commit
    finally:
        await a.close()
        await b.close()


async def test_an_unreachable_database_is_named_without_its_password() -> None:
    with pytest.raises(StoreUnavailable) as err:
        await open_store("postgresql://wagate:hunter2@127.0.0.1:1/wagate")
    assert "postgresql://wagate:***@127.0.0.1:1/wagate" in str(err.value)
    assert "hunter2" not in str(err.value)



async def test_one_pace_per_number_across_processes(
        two: tuple[PostgresStore, PostgresStore]) -> None:
    # Two processes sending for one number share its pace: their bookings
    # interleave one interval apart, not each at the full rate.
    a, b = two
    first = await booked_slots(a, 1, 1.0, 3)
    second = await booked_slots(b, 1, 1.0, 3)
    slots = first + second
    assert all(0.75 < later - earlier < 1.25 for earlier, later in itertools.pairwise(slots))


async def test_sends_made_at_once_by_two_processes_keep_the_quota_exact(
        two: tuple[PostgresStore, PostgresStore], postgres: Backend) -> None:
    """200 sends of one subscriber at once, half through each process, against
    a quota of 150: each process writes what arrives meanwhile as one batch,
    and the batches of both take the subscriber's quota in turn."""
    a, b = two
    await a.commit_inbound(registered(message(sender=ES), reply=None), T0)
    sends = [(a, b)[n % 2].accept_send(api_send(text=f"n{n}"), group_name=None,
                                       limits=limits(messages=150), now=T0 + 1)
             for n in range(200)]
    # And a subscriber whose only send is refused, in the same batches.
    sends.append(a.accept_send(api_send(to="+34699999999", subscriber="gamma"),
                               group_name=None, limits=limits(), now=T0 + 1))
    *outcomes, gamma = await asyncio.gather(*sends)
    assert gamma.status == "not_registered"
    assert sorted(o.status for o in outcomes) == ["queued"] * 150 + ["quota_exceeded"] * 50
    assert {(o.count, o.limit) for o in outcomes if not o.queued} == {(150, 150)}
    counted = {o.message_id: o.count for o in outcomes if o.queued}
    assert sorted(counted.values()) == list(range(1, 151))
    conn = await asyncpg.connect(postgres.url)
    try:
        rows = await conn.fetch("SELECT id, text, xmin::text FROM outbound ORDER BY seq")
        quota_rows = await conn.fetch("SELECT subscriber_id, count FROM send_quota")
    finally:
        await conn.close()
    # The outbound table holds the accepted ones, queued in the order they
    # were counted; each process's in the order it was given them.
    assert [counted[r["id"]] for r in rows] == list(range(1, 151))
    for first in (0, 1):
        sent = [int(r["text"][1:]) for r in rows if int(r["text"][1:]) % 2 == first]
        assert sent == sorted(sent)
    # Written together: far fewer transactions than sends.
    assert len({r["xmin"] for r in rows}) <= 20
    # The refused subscriber's send left no row behind.
    assert [tuple(r) for r in quota_rows] == [("acme", 150)]
