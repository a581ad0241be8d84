"""The ports whose units a store may write together (group commit): what each
caller sees must be what it would see alone."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from bot.effects import DeliveryDraft, Effects, GroupWrite, OutboundDraft, RegistrationWrite
from bot.events import GroupRef, InboundMessage, StatusUpdate
from bot.store import Store
from bot.store.models import AttemptOutcome, Registration, SendLimits, SendOutcome
from tests.store_contract.test_ports import DAY, attempt, delivery

ES = "+34600000001"
T0 = 1_000_000.0


async def test_a_batch_books_its_slots_at_once(store: Store) -> None:
    # A worker books a claimed batch of four in one call: the first slot is
    # now, and the next booking (this process's or another's) comes four
    # intervals later, not one.
    assert await store.reserve_pace(3, 1.0, 4) < 0.5
    assert 3.5 < await store.reserve_pace(3, 1.0) < 4.5
    assert 4.5 < await store.reserve_pace(3, 1.0, 2) < 5.5


async def test_sent_marks_made_at_once_each_land_as_alone(store: Store) -> None:
    # 30 sends answered at once (the worker's tasks do that under load): each
    # is sent once in its history, its media dropped unless kept, and a status
    # that came before its mark (parked) still wins over 'sent'.
    await store.enqueue([OutboundDraft(instance_id=1, to=ES, text=f"m{i}", media=b"\x89PNG")
                         for i in range(30)], T0)
    rows = await store.claim_outbound(T0, 30, 60)
    assert len(rows) == 30
    early = {rows[i].id for i in range(0, 30, 7)}
    for i in range(0, 30, 7):
        assert await store.apply_status(StatusUpdate(
            provider="meta", provider_message_id=f"wamid.b{i}", instance_id=1,
            status="read", timestamp=T0), T0) is None
    await asyncio.gather(*(store.mark_sent(row.id, f"wamid.b{i}", T0 + 1 + i,
                                           keep_media=i % 2 == 1)
                           for i, row in enumerate(rows)))
    for i, row in enumerate(rows):
        got = await store.get_outbound(row.id)
        assert got is not None
        assert (got.status, got.provider_message_id) == (
            "read" if row.id in early else "sent", f"wamid.b{i}")
        assert [e.status for e in await store.status_history(row.id)][:2] == [
            "queued", "sent"]
        kept = i % 2 == 1 and row.id not in early
        assert (await store.outbound_media(row.id) is not None) == kept
    assert await store.claim_outbound(T0 + 100, 30, 60) == []


# Values that SQL text must carry exactly: quotes, backslashes, what reads as a
# placeholder, array-literal syntax, a comment's start, far-off Unicode.
AWKWARD = "It's \\ back $1 $12 {x,y} \"q\" -- not; a comment ☃ 𝄞 \\x41 E'' NULL"


async def test_a_message_and_what_it_caused_keep_their_values_exactly(store: Store) -> None:
    msg = InboundMessage(provider="sandbox", provider_message_id="wamid.awk", instance_id=1,
                         sender=ES, text=AWKWARD, timestamp=T0 - 0.25)
    effects = Effects(inbound=msg, registration=RegistrationWrite(
        instance_id=1, number=ES, locale="es", status="active", keyword_subscriber=AWKWARD))
    effects.replies.append(OutboundDraft(instance_id=1, to=ES, text=AWKWARD,
                                         caption=None, media=b"\x00\\'\"{}"))
    effects.auto_reply_marks.append("any")
    effects.deliveries.append(DeliveryDraft(
        id="d-awk", subscriber_id="acme", endpoint_key="main", url="https://hooks.example/a",
        format="standard", event_type="message.received",
        payload=json.dumps({"text": AWKWARD, "n": -1.5})))
    assert await store.commit_inbound(effects, T0) is True
    [got] = await store.list_messages(direction="in", instance_id=1, number=ES, limit=10)
    assert got.text == AWKWARD
    [reg] = await store.registrations_of(ES)
    assert reg.keyword_subscriber == AWKWARD
    [out] = await store.claim_outbound(T0 + 1, 10, 60)
    assert out.text == AWKWARD
    assert await store.outbound_media(out.id) == b"\x00\\'\"{}"
    [dlv] = await store.list_deliveries(status="pending", subscriber_id="acme",
                                        endpoint_key="main", limit=10)
    assert json.loads(dlv.payload) == {"text": AWKWARD, "n": -1.5}
    assert await store.commit_inbound(effects, T0 + 2) is False  # stored once



# ---- subscriber sends made at once (PostgreSQL writes them as one batch)


def _limits(messages: int, recipients: int) -> SendLimits:
    return SendLimits(messages_per_period=messages, max_recipients=recipients,
                      period_seconds=86400.0)


def _send(to: str | None, text: str, subscriber: str = "acme") -> OutboundDraft:
    return OutboundDraft(instance_id=1, to=to, text=text, subscriber_id=subscriber)


async def _register(store: Store, *numbers: str) -> None:
    for n, number in enumerate(numbers):
        await store.commit_inbound(Effects(
            inbound=InboundMessage(provider="sandbox", provider_message_id=f"reg{n}",
                                   instance_id=1, sender=number, text="Hola", timestamp=T0),
            registration=RegistrationWrite(instance_id=1, number=number, locale="es",
                                           status="active")), T0)


async def test_a_recipient_limit_hit_by_sends_made_at_once_is_exact(store: Store) -> None:
    # 24 sends at once to 8 numbers in turn, a total of 5 recipients: as one
    # after another, the first 5 numbers take every send of theirs, the other
    # 3 none; counts follow the order the sends were made in.
    numbers = [f"+3460000{n:04d}" for n in range(8)]
    await _register(store, *numbers)
    outcomes = await asyncio.gather(*(
        store.accept_send(_send(numbers[i % 8], f"n{i}"), group_name=None,
                          limits=_limits(100, 5), now=T0 + 1) for i in range(24)))
    assert [o.status for o in outcomes] == [
        "queued" if i % 8 < 5 else "recipient_limit" for i in range(24)]
    assert [o.count for o in outcomes if o.queued] == list(range(1, 16))
    assert {(o.count, o.limit) for o in outcomes if not o.queued} == {(5, 5)}
    usage = await store.send_usage("acme", 86400.0, T0 + 2)
    assert (usage.count, usage.recipients) == (15, 5)
    queued = [f"n{i}" for i in range(24) if i % 8 < 5]
    assert [r.text for r in await store.list_outbox(instance_id=1, to=None, limit=100)] == queued


async def test_a_refused_send_among_others_made_at_once_refuses_only_itself(
        store: Store) -> None:
    await _register(store, ES, "+49150000002")
    group = Effects(inbound=InboundMessage(provider="sandbox", provider_message_id="g",
                                           instance_id=1, sender=ES, text="Hola",
                                           group=GroupRef(id="g-1", name="Family"),
                                           timestamp=T0),
                    group=GroupWrite(instance_id=1, group_id="g-1", name="Family"))
    await store.commit_inbound(group, T0)
    sends = [(_send(ES, "a"), None), (_send("+34699999999", "b"), None),
             (_send(None, "c"), "family"), (_send("+34699999999", "d", "gamma"), None),
             (_send(None, "e"), "nope"), (_send("+49150000002", "f"), None)]
    outcomes = await asyncio.gather(*(
        store.accept_send(draft, group_name=name, limits=_limits(10, 10), now=T0 + 1)
        for draft, name in sends))
    assert [o.status for o in outcomes] == [
        "queued", "not_registered", "queued", "not_registered", "unknown_group", "queued"]
    assert [o.count for o in outcomes if o.queued] == [1, 2, 3]
    rows = await store.list_outbox(instance_id=1, to=None, limit=10)
    assert [(r.text, r.to, r.group_id) for r in rows] == [
        ("a", ES, None), ("c", None, "g-1"), ("f", "+49150000002", None)]
    assert [r.id for r in rows] == [o.message_id for o in outcomes if o.queued]
    usage = await store.send_usage("acme", 86400.0, T0 + 2)
    assert (usage.count, usage.recipients, usage.period_start) == (3, 3, T0 + 1)
    # gamma's one send was refused: it left no trace, no period started.
    gamma = await store.send_usage("gamma", 86400.0, T0 + 2)
    assert (gamma.count, gamma.recipients, gamma.period_start) == (0, 0, None)


async def test_a_send_that_fails_among_others_made_at_once_fails_alone(store: Store) -> None:
    await _register(store, ES)

    def fit(draft: OutboundDraft, reg: Registration) -> OutboundDraft | SendOutcome:
        if draft.text == "boom":
            raise RuntimeError("the window could not be told")
        return draft

    outcomes = await asyncio.gather(*(
        store.accept_send(_send(ES, text), group_name=None, limits=_limits(10, 10),
                          now=T0 + 1, fit=fit) for text in ("a", "b", "boom", "c")),
        return_exceptions=True)
    assert isinstance(outcomes[2], RuntimeError)
    sent = [o for o in outcomes if isinstance(o, SendOutcome)]
    assert [o.status for o in sent] == ["queued"] * 3
    assert sorted(o.count for o in sent) == [1, 2, 3]
    rows = await store.list_outbox(instance_id=1, to=None, limit=10)
    assert sorted(r.text for r in rows) == ["a", "b", "c"]
    assert (await store.send_usage("acme", 86400.0, T0 + 2)).count == 3


def sent_event(message_id: str, mark: int) -> DeliveryDraft:
    """The `message.status` sent event a mark carries (one id per mark)."""
    return DeliveryDraft(id=f"sent-{message_id}-{mark}", subscriber_id="acme",
                         endpoint_key="main", url="https://hooks.example/acme",
                         format="standard", event_type="message.status",
                         payload=json.dumps({"id": message_id, "status": "sent"}))


async def test_sent_marks_with_their_events_made_at_once_each_tell_once(store: Store) -> None:
    # 20 sends answered at once, each mark carrying its sent event, and each
    # marked a second time meanwhile (a lease that ran out): each message is
    # sent and told once, by its first mark; one that failed before its mark
    # came tells nobody.
    await store.enqueue([OutboundDraft(instance_id=1, to=ES, text=f"m{i}", subscriber_id="acme")
                         for i in range(20)], T0)
    rows = await store.claim_outbound(T0, 20, 60)
    assert len(rows) == 20
    failed = {rows[i].id for i in range(0, 20, 6)}
    for row_id in failed:
        await store.mark_failed(row_id, 131026, "Message undeliverable", T0)
    await asyncio.gather(*(store.mark_sent(row.id, f"wamid.t{i}", T0 + 1,
                                           deliveries=[sent_event(row.id, mark)])
                           for mark in (1, 2) for i, row in enumerate(rows)))
    told = await store.list_deliveries(status="pending", subscriber_id="acme",
                                       endpoint_key="main", limit=100)
    assert sorted(d.id for d in told) == sorted(
        f"sent-{row.id}-1" for row in rows if row.id not in failed)
    for row in rows:
        got = await store.get_outbound(row.id)
        assert got is not None
        assert got.status == ("failed" if row.id in failed else "sent")
        history = [e.status for e in await store.status_history(row.id)]
        assert history.count("sent") == (row.id not in failed)


async def recorded_twice(store: Store, one_call: bool) -> tuple[list[Any], list[Any],
                                                                list[Any]]:
    """Attempts of mixed outcomes on two endpoints of one subscriber (its own:
    'calls' or 'singly'), recorded in one call or one call each: what each
    returned, the deliveries (with their attempts) and the endpoints after."""
    sub = "calls" if one_call else "singly"
    main = [delivery(sub, "main") for _ in range(4)]
    spare = [delivery(sub, "spare") for _ in range(3)]
    await store.add_deliveries(main + spare, T0)
    assert len(await store.claim_deliveries(T0, 10, 30, exclude=[
        (s, e) for s in ("calls", "singly") for e in ("main", "spare") if s != sub])) == 7
    waiting = [delivery(sub, "main"), delivery(sub, "spare")]  # not being sent
    await store.add_deliveries(waiting, T0)
    late = T0 + 6 * DAY  # past the 5 days an endpoint may keep failing
    def at(row: DeliveryDraft, outcome: str, when: float, code: int,
           retry_at: float | None = None) -> AttemptOutcome:
        return attempt(row.id, outcome, when, code=code, subscriber=sub,
                       endpoint=row.endpoint_key, next_attempt_at=retry_at)

    results = [at(main[0], "retry", T0, 503, T0 + 60), at(spare[0], "delivered", T0, 200),
               at(main[1], "retry", late, 503, late + 60), at(main[2], "delivered", late, 200),
               at(spare[1], "retry", late, 500, late + 60),
               at(main[3], "retry", late, 503, late + 60), at(spare[2], "disabled", late, 410)]
    if one_call:
        returned = await store.record_attempts(results, late)
    else:
        returned = [(await store.record_attempts([r], late))[0] for r in results]
    deliveries = []
    for d in main + spare + waiting:
        got = await store.get_delivery(d.id)
        assert got is not None
        row, attempts = got
        deliveries.append((dataclasses.replace(row, id="", subscriber_id="", url=""),
                           [(a.outcome, a.status_code, a.at) for a in attempts]))
    endpoints = [dataclasses.replace(e, subscriber_id="")
                 for e in await store.list_endpoint_health() if e.subscriber_id == sub]
    return returned, deliveries, endpoints


async def test_attempts_in_one_call_end_as_one_call_each(store: Store) -> None:
    # Mixed outcomes on two endpoints: one is disabled for failing too long
    # (failing the other pending deliveries, the one this call retried before
    # included), succeeds after, and its last retry fails; the other succeeds,
    # fails, and is disabled by a 410.
    batched = await recorded_twice(store, one_call=True)
    assert batched == await recorded_twice(store, one_call=False)
    returned, deliveries, endpoints = batched
    assert [outcome for outcome, _ in returned] == [
        "retry", "delivered", "failed", "delivered", "retry", "failed", "disabled"]
    assert returned[2][1] is not None and returned[2][1].startswith("failing for")
    assert returned[6][1] == "HTTP 410 Gone"
    assert [row.status for row, _ in deliveries] == [
        "failed", "failed", "delivered", "failed", "delivered", "failed", "failed",
        "failed", "failed"]
    main, spare = sorted(endpoints, key=lambda e: e.endpoint_key)
    # main: failing again since its last retry, after the success before it.
    assert (main.disabled_at, main.failing_since, main.last_success_at) == (
        T0 + 6 * DAY, T0 + 6 * DAY, T0 + 6 * DAY)
    assert (spare.disabled_reason, spare.failing_since, spare.last_success_at) == (
        "HTTP 410 Gone", T0 + 6 * DAY, T0)


async def test_attempts_recorded_at_once_each_answer_their_own(store: Store) -> None:
    # Twelve deliveries answered at once, each recorded by its own call (as the
    # worker records HTTP deliveries), on two endpoints; the last, a 410,
    # disables one: each caller gets its own outcome, and that endpoint's
    # retried deliveries (pending again before it) fail as they would one by one.
    drafts = [delivery(endpoint=("main", "spare")[i % 2]) for i in range(12)]
    await store.add_deliveries(drafts, T0)
    assert len(await store.claim_deliveries(T0, 12, 30)) == 12
    kinds = [("delivered", 200), ("retry", 503), ("failed", 400)]
    results = [attempt(d.id, *kinds[i % 3][:1], T0 + 1, code=kinds[i % 3][1],
                       endpoint=d.endpoint_key, next_attempt_at=T0 + 60)
               for i, d in enumerate(drafts[:11])]
    results.append(attempt(drafts[11].id, "disabled", T0 + 1, code=410, endpoint="spare"))
    returned = await asyncio.gather(*(store.record_attempts([r], T0 + 1) for r in results))
    assert returned == [[(kinds[i % 3][0], None)] for i in range(11)] + [
        [("disabled", "HTTP 410 Gone")]]
    statuses = [(await store.get_delivery(d.id))[0].status for d in drafts]
    assert statuses == [
        {"delivered": "delivered", "failed": "failed",
         "retry": "pending" if d.endpoint_key == "main" else "failed"}[kinds[i % 3][0]]
        for i, d in enumerate(drafts[:11])] + ["failed"]
