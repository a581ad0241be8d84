"""Every port of the Store protocol, the same assertions on each backend."""

from __future__ import annotations

import asyncio
import itertools
import time

from bot.effects import (
    DeliveryDraft,
    Effects,
    GroupWrite,
    OutboundDraft,
    RegistrationWrite,
)
from bot.events import GroupRef, InboundMessage, StatusUpdate
from bot.store import Store
from bot.store.models import (
    AttemptOutcome,
    AttemptRow,
    InboundContext,
    OutboundRow,
    SendLimits,
    StatusEvent,
)

ES = "+34600000001"
DE = "+49150000002"
T0 = 1_000_000.0
DAY = 86400.0
_ids = itertools.count(1)


def message(sender: str = ES, text: str = "Hola", *, instance: int = 1,
            message_id: str | None = None, group: GroupRef | None = None) -> InboundMessage:
    return InboundMessage(provider="sandbox", provider_message_id=message_id or f"m{next(_ids)}",
                          instance_id=instance, sender=sender, text=text, group=group,
                          timestamp=T0)


def registered(msg: InboundMessage, *, reply: str | None = "registered",
               keyword: str | None = None) -> Effects:
    effects = Effects(inbound=msg, registration=RegistrationWrite(
        instance_id=msg.instance_id, number=msg.sender, locale="es", status="active",
        keyword_subscriber=keyword))
    if reply is not None:
        effects.replies.append(OutboundDraft(instance_id=msg.instance_id, to=msg.sender,
                                             text=reply))
        effects.auto_reply_marks.append("any")
    return effects


def delivery(subscriber: str = "acme", endpoint: str = "main", event: str = "message.received",
             url: str = "https://hooks.example/acme") -> DeliveryDraft:
    return DeliveryDraft(id=f"d{next(_ids)}", subscriber_id=subscriber, endpoint_key=endpoint,
                         url=url, format="standard", event_type=event, payload='{"n": 1}')


def attempt(row_id: str, outcome: str, at: float, *, code: int | None = None,
            subscriber: str = "acme", endpoint: str = "main",
            next_attempt_at: float | None = None) -> AttemptOutcome:
    return AttemptOutcome(
        attempt=AttemptRow(delivery_id=row_id, at=at, outcome=outcome, status_code=code,
                           latency_ms=3.5, response_body="ok", error=None),
        subscriber_id=subscriber, endpoint_key=endpoint, url="https://hooks.example/acme",
        next_attempt_at=next_attempt_at, disable_after=5 * DAY)


def limits(messages: int = 10, recipients: int = 10) -> SendLimits:
    return SendLimits(messages_per_period=messages, max_recipients=recipients,
                      period_seconds=DAY)


def api_send(to: str | None = ES, text: str = "hi", subscriber: str = "acme") -> OutboundDraft:
    return OutboundDraft(instance_id=1, to=to, text=text, subscriber_id=subscriber)


# ---- inbound


async def test_commit_inbound_stores_the_message_and_its_effects_once(store: Store) -> None:
    msg = message(message_id="wamid.1")
    assert await store.commit_inbound(registered(msg), T0) is True
    # The provider delivers it again: nothing more is written.
    again = registered(message(message_id="wamid.1"), reply="twice")
    assert await store.commit_inbound(again, T0 + 1) is False
    assert [r.text for r in await store.list_outbox(instance_id=1, to=ES, limit=10)] == [
        "registered"]
    [reg] = await store.registrations_of(ES)
    assert (reg.status, reg.locale, reg.registered_at, reg.opted_out_at) == (
        "active", "es", T0, None)
    assert await store.has_written(ES) and not await store.has_written(DE)
    # The same provider message id from another provider is another message.
    other = Effects(inbound=InboundMessage(provider="meta", provider_message_id="wamid.1",
                                           instance_id=1, sender=ES, timestamp=T0))
    assert await store.commit_inbound(other, T0 + 2) is True


async def test_context_holds_registration_marks_and_last_sender(store: Store) -> None:
    empty = await store.load_inbound_context(1, ES, None)
    assert empty == InboundContext(registration=None, group=None, last_auto_reply_at=None,
                                   last_hint_at=None)
    await store.commit_inbound(registered(message(), keyword="acme"), T0)
    outcome = await store.accept_send(api_send(), group_name=None, limits=limits(), now=T0 + 5)
    assert outcome.queued
    ctx = await store.load_inbound_context(1, ES, None)
    assert ctx.registration is not None and ctx.registration.keyword_subscriber == "acme"
    assert (ctx.last_auto_reply_at, ctx.last_hint_at, ctx.keyword_at) == (T0, None, T0)
    assert ctx.last_sender == ("acme", T0 + 5)
    # Another instance knows nothing of it.
    assert (await store.load_inbound_context(2, ES, None)).registration is None


async def test_stop_keeps_the_first_opt_out_time_and_hi_clears_it(store: Store) -> None:
    await store.commit_inbound(registered(message()), T0)
    for at in (T0 + 10, T0 + 20):
        stop = Effects(inbound=message(text="STOP"), registration=RegistrationWrite(
            instance_id=1, number=ES, locale="es", status="opted_out"))
        await store.commit_inbound(stop, at)
    [reg] = await store.registrations_of(ES)
    assert (reg.status, reg.opted_out_at) == ("opted_out", T0 + 10)
    await store.commit_inbound(registered(message()), T0 + 30)
    [reg] = await store.registrations_of(ES)
    assert (reg.status, reg.opted_out_at, reg.registered_at) == ("active", None, T0 + 30)


async def test_groups_are_found_by_name_whatever_its_case(store: Store) -> None:
    ref = GroupRef(id="g-1", name="Family")
    effects = Effects(inbound=message(group=ref),
                      group=GroupWrite(instance_id=1, group_id="g-1", name="Family  Chat"))
    effects.auto_reply_marks.append("hint")
    await store.commit_inbound(effects, T0)
    group = await store.find_group(1, "family chat")
    assert group is not None and (group.group_id, group.name) == ("g-1", "Family  Chat")
    assert await store.find_group(2, "family chat") is None
    ctx = await store.load_inbound_context(1, ES, "g-1")
    assert ctx.group == group and ctx.last_hint_at == T0 and ctx.last_auto_reply_at is None
    # A send to the group by name queues it to the group id.
    outcome = await store.accept_send(api_send(to=None), group_name="FAMILY chat",
                                      limits=limits(), now=T0 + 1)
    assert outcome.queued
    row = await store.get_outbound(str(outcome.message_id))
    assert row is not None and (row.group_id, row.to, row.group_name) == (
        "g-1", None, "Family  Chat")


# ---- statuses


async def sent_message(store: Store, provider_id: str, now: float = T0, *,
                       keep_media: bool = False) -> str:
    draft = OutboundDraft(instance_id=1, to=ES, text="hello", media=b"\x89PNG")
    await store.enqueue([draft], now)
    [row] = await store.claim_outbound(now, 10, 60)
    assert await store.outbound_media(row.id) == b"\x89PNG"
    await store.mark_sent(row.id, provider_id, now + 1, keep_media=keep_media)
    return row.id


def status(provider_id: str, value: str, code: int | None = None) -> StatusUpdate:
    return StatusUpdate(provider="meta", provider_message_id=provider_id, instance_id=1,
                        status=value, error_code=code, timestamp=T0)


async def test_statuses_only_move_forward(store: Store) -> None:
    row_id = await sent_message(store, "wamid.s1")
    assert await store.outbound_media(row_id) is None  # dropped once sent
    routed: list[str] = []

    def route(row: OutboundRow) -> list[DeliveryDraft]:
        routed.append(row.status)
        return [delivery(event=f"message.{row.status}")]

    got = await store.apply_status(status("wamid.s1", "read"), T0 + 2, route)
    assert got is not None and got.status == "read" and got.provider_message_id == "wamid.s1"
    assert await store.apply_status(status("wamid.s1", "delivered"), T0 + 3, route) is None
    failed = await store.apply_status(status("wamid.s1", "failed", 131047), T0 + 4, route)
    assert failed is not None and (failed.status, failed.error_code) == ("failed", 131047)
    assert routed == ["read", "failed"]
    assert [d.event_type for d in await store.list_deliveries(
        status="pending", subscriber_id=None, endpoint_key=None, limit=10)] == [
        "message.failed", "message.read"]


async def test_the_sent_mark_queues_its_deliveries_once(store: Store) -> None:
    """`message.status` sent commits with the mark, and only with the one that
    moved the message from queued: a second mark (a lease that ran out) adds none."""
    draft = OutboundDraft(instance_id=1, to=ES, text="hello", subscriber_id="acme")
    await store.enqueue([draft], T0)
    [row] = await store.claim_outbound(T0, 10, 60)
    told = delivery(event="message.status")
    await store.mark_sent(row.id, "wamid.m1", T0 + 1, deliveries=[told])
    await store.mark_sent(row.id, "wamid.m1", T0 + 2, deliveries=[delivery(event="twice")])
    assert [d.id for d in await store.list_deliveries(
        status="pending", subscriber_id=None, endpoint_key=None, limit=10)] == [told.id]
    assert (await store.get_outbound(row.id)).status == "sent"


async def test_the_failed_mark_queues_its_deliveries_with_it(store: Store) -> None:
    """`message.status` failed commits with the mark: the message failed and the
    subscriber told, together."""
    draft = OutboundDraft(instance_id=1, to=ES, text="hello", subscriber_id="acme")
    await store.enqueue([draft], T0)
    [row] = await store.claim_outbound(T0, 10, 60)
    told = delivery(event="message.status")
    await store.mark_failed(row.id, 131026, "Message undeliverable", T0 + 1, deliveries=[told])
    assert [d.id for d in await store.list_deliveries(
        status="pending", subscriber_id=None, endpoint_key=None, limit=10)] == [told.id]
    failed = await store.get_outbound(row.id)
    assert (failed.status, failed.error_code) == ("failed", 131026)


async def test_a_status_before_the_send_is_recorded_waits_for_it(store: Store) -> None:
    assert await store.apply_status(status("wamid.e1", "read"), T0) is None
    assert await store.apply_status(status("wamid.e1", "delivered"), T0) is None  # not worse
    row_id = await sent_message(store, "wamid.e1")
    row = await store.get_outbound(row_id)
    assert row is not None and row.status == "read"
    # A status for nobody's message is parked, then forgotten after a day.
    await store.apply_status(status("wamid.nobody", "delivered"), T0)
    await store.apply_status(status("wamid.e2", "delivered"), T0 + DAY + 1)
    early = await sent_message(store, "wamid.nobody", now=T0 + DAY + 2)
    assert (await store.get_outbound(early)).status == "sent"


def provider_status(provider_id: str, value: str, at: float, code: int | None = None,
                    title: str | None = None) -> StatusUpdate:
    return StatusUpdate(provider="meta", provider_message_id=provider_id, instance_id=1,
                        status=value, error_code=code, error_title=title, timestamp=at)


async def history(store: Store, message_id: str) -> list[tuple[float, str, int | None]]:
    return [(e.at, e.status, e.error_code) for e in await store.status_history(message_id)]


async def test_history_records_each_change_at_the_providers_time(store: Store) -> None:
    row_id = await sent_message(store, "wamid.h1")
    await store.apply_status(provider_status("wamid.h1", "delivered", T0 + 5), T0 + 7)
    await store.apply_status(provider_status("wamid.h1", "read", T0 + 9), T0 + 10)
    # A late "delivered" after "read" changes nothing, so it is no history.
    await store.apply_status(provider_status("wamid.h1", "delivered", T0 + 6), T0 + 11)
    # A provider status without a timestamp is recorded when it arrived.
    await store.apply_status(provider_status("wamid.h1", "failed", 0, 131047,
                                             "Re-engagement message"), T0 + 12)
    assert await history(store, row_id) == [
        (T0, "queued", None), (T0 + 1, "sent", None), (T0 + 5, "delivered", None),
        (T0 + 9, "read", None), (T0 + 12, "failed", 131047)]
    assert (await store.status_history(row_id))[-1] == StatusEvent(
        at=T0 + 12, status="failed", error_code=131047, error_title="Re-engagement message")
    assert await store.status_history("no-such-message") == []


async def test_history_of_a_status_that_came_before_the_send(store: Store) -> None:
    await store.apply_status(provider_status("wamid.h2", "delivered", T0 + 3), T0 + 4)
    row_id = await sent_message(store, "wamid.h2", now=T0 + 5)
    # Parked statuses are recorded when applied, at the time they were received.
    assert await history(store, row_id) == [
        (T0 + 5, "queued", None), (T0 + 6, "sent", None), (T0 + 4, "delivered", None)]


async def test_history_of_a_retry_and_a_failure_carries_the_errors(store: Store) -> None:
    await store.enqueue([OutboundDraft(instance_id=1, to=ES, text="a"),
                         OutboundDraft(instance_id=1, to=DE, text="b")], T0)
    first, second = await store.claim_outbound(T0, 10, 60)
    await store.mark_retry(first.id, T0 + 30, 131000, "Something went wrong", T0 + 1)
    await store.mark_failed(second.id, 131026, "Message undeliverable", T0 + 2)
    [again] = await store.claim_outbound(T0 + 30, 10, 60)
    await store.mark_sent(again.id, "wamid.h3", T0 + 31)
    assert [(e.at, e.status, e.error_code, e.error_title)
            for e in await store.status_history(first.id)] == [
        (T0, "queued", None, None), (T0 + 1, "retry", 131000, "Something went wrong"),
        (T0 + 31, "sent", None, None)]
    assert [(e.status, e.error_code, e.error_title)
            for e in await store.status_history(second.id)] == [
        ("queued", None, None), ("failed", 131026, "Message undeliverable")]


async def test_an_accepted_send_starts_its_history(store: Store) -> None:
    await store.commit_inbound(registered(message(), reply=None), T0)
    outcome = await store.accept_send(api_send(), group_name=None, limits=limits(), now=T0 + 1)
    assert outcome.message_id is not None
    assert await history(store, outcome.message_id) == [(T0 + 1, "queued", None)]
    # A refused send leaves no history either.
    refused = await store.accept_send(api_send(to=DE), group_name=None, limits=limits(),
                                      now=T0 + 2)
    assert refused.status == "not_registered" and refused.message_id is None


# ---- outbound queue


async def test_claims_lease_retry_and_fail(store: Store) -> None:
    drafts = [OutboundDraft(instance_id=i, to=ES, text=f"m{n}")
              for n, i in enumerate([1, 2, 1])]
    await store.enqueue(drafts, T0)
    assert await store.queue_depth() == (3, T0)
    assert await store.next_outbound_due() == T0
    first = await store.claim_outbound(T0, 2, 60, exclude_instances=[2])
    assert [r.text for r in first] == ["m0", "m2"]
    # Leased rows are not handed out again before the lease ends...
    [second] = await store.claim_outbound(T0 + 1, 10, 60)
    assert second.text == "m1"
    assert await store.claim_outbound(T0 + 2, 10, 60) == []
    assert await store.next_outbound_due() == T0 + 60
    # ... and come due again when it does (a worker that died).
    assert {r.text for r in await store.claim_outbound(T0 + 60, 10, 60)} == {"m0", "m2"}
    await store.mark_retry(first[0].id, T0 + 200, 131000, "try later", T0 + 62)
    await store.mark_failed(first[1].id, 131026, "undeliverable", T0 + 62)
    await store.mark_sent(second.id, "wamid.ok", T0 + 62)
    assert await store.claim_outbound(T0 + 199, 10, 60) == []
    [again] = await store.claim_outbound(T0 + 200, 10, 60)
    assert (again.id, again.attempts, again.error_code) == (first[0].id, 1, 131000)
    failed = await store.get_outbound(first[1].id)
    assert failed is not None and (failed.status, failed.error_title) == (
        "failed", "undeliverable")
    assert await store.queue_depth() == (1, T0)


async def test_released_claims_are_due_at_once(store: Store) -> None:
    now = time.time()  # a release makes claims due as of the wall clock
    await store.enqueue([OutboundDraft(instance_id=1, to=ES, text="x")], now)
    [row] = await store.claim_outbound(now, 10, 3600)
    await store.release_claims()
    [again] = await store.claim_outbound(time.time(), 10, 3600)
    assert again.id == row.id


async def test_a_release_frees_its_holders_claims_only(store: Store) -> None:
    now = time.time()
    await store.enqueue([OutboundDraft(instance_id=1, to=ES, text=f"m{n}") for n in range(3)],
                        now)
    await store.add_deliveries([delivery(), delivery()], now)
    gone = await store.claim_outbound(now, 2, 600, holder="host:1")
    alive = await store.claim_outbound(now, 2, 600, holder="host:2")
    assert len(gone) == 2 and len(alive) == 1
    assert await store.release_claims("host:1") == 2
    assert {r.id for r in await store.claim_outbound(time.time(), 10, 600)} == {
        r.id for r in gone}
    [dead] = await store.claim_deliveries(now, 1, 600, holder="host:1")
    await store.claim_deliveries(now, 1, 600, holder="host:2")
    assert await store.release_delivery_claims("host:1") == 1
    assert [d.id for d in await store.claim_deliveries(time.time(), 10, 600)] == [dead.id]


async def test_next_due_leaves_out_the_numbers_a_worker_cannot_take_more_for(
        store: Store) -> None:
    """A worker holding all a number may hold waits for a send to end, not for
    that number's due queue: counting it, the worker would claim in a loop."""
    await store.enqueue([OutboundDraft(instance_id=1, to=ES, text="now")], T0)
    await store.enqueue([OutboundDraft(instance_id=2, to=ES, text="later")], T0 + 30)
    assert await store.next_outbound_due() == T0
    assert await store.next_outbound_due([1]) == T0 + 30
    assert await store.next_outbound_due([1, 2]) is None


# ---- send API


async def test_accept_send_checks_registration_group_quota_and_recipients(
        store: Store) -> None:
    assert (await store.accept_send(api_send(), group_name=None, limits=limits(),
                                    now=T0)).status == "not_registered"
    assert (await store.accept_send(api_send(to=None), group_name="nope", limits=limits(),
                                    now=T0)).status == "unknown_group"
    for number in (ES, DE):
        await store.commit_inbound(registered(message(sender=number), reply=None), T0)
    tight = limits(messages=2, recipients=1)
    ok = await store.accept_send(api_send(), group_name=None, limits=tight, now=T0 + 10)
    assert (ok.status, ok.count, ok.period_start, ok.reset_at) == (
        "queued", 1, T0 + 10, T0 + 10 + DAY)
    other = await store.accept_send(api_send(to=DE), group_name=None, limits=tight, now=T0 + 11)
    assert (other.status, other.count, other.limit) == ("recipient_limit", 1, 1)
    await store.accept_send(api_send(), group_name=None, limits=tight, now=T0 + 12)
    full = await store.accept_send(api_send(), group_name=None, limits=tight, now=T0 + 13)
    assert (full.status, full.count, full.reset_at) == ("quota_exceeded", 2, T0 + 10 + DAY)
    # Refusals wrote nothing: two messages queued, one recipient counted.
    assert len(await store.list_outbox(instance_id=1, to=None, limit=10)) == 2
    usage = await store.send_usage("acme", DAY, T0 + 14)
    assert (usage.count, usage.recipients, usage.period_start) == (2, 1, T0 + 10)
    # The period ends: the next send starts a new one.
    later = await store.accept_send(api_send(), group_name=None, limits=tight,
                                    now=T0 + 10 + DAY)
    assert (later.status, later.count, later.period_start) == ("queued", 1, T0 + 10 + DAY)
    assert (await store.send_usage("acme", DAY, T0 + 20 + 2 * DAY)).count == 0


async def test_50_concurrent_sends_at_a_limit_of_10(store: Store) -> None:
    await store.commit_inbound(registered(message(), reply=None), T0)
    outcomes = await asyncio.gather(*(
        store.accept_send(api_send(text=f"n{n}"), group_name=None, limits=limits(messages=10),
                          now=T0 + 1) for n in range(50)))
    assert sorted(o.status for o in outcomes) == ["queued"] * 10 + ["quota_exceeded"] * 40
    assert sorted(o.count for o in outcomes if o.queued) == list(range(1, 11))
    assert len(await store.list_outbox(instance_id=1, to=ES, limit=100)) == 10


# ---- webhook deliveries


async def test_deliveries_claim_attempt_retry_and_replay(store: Store) -> None:
    first, second, busy = delivery(), delivery(), delivery(endpoint="other")
    await store.add_deliveries([first, second, busy], T0)
    assert await store.delivery_queue_depth() == 3
    assert await store.next_delivery_due(exclude=[("acme", "main")]) == T0
    claimed = await store.claim_deliveries(T0, 10, 30, exclude=[("acme", "other")])
    assert [d.id for d in claimed] == [first.id, second.id]
    assert await store.next_delivery_due(exclude=[("acme", "other")]) == T0 + 30
    assert await store.record_attempts([  # a batch: one write, each its own outcome
        attempt(first.id, "delivered", T0 + 1, code=200),
        attempt(second.id, "retry", T0 + 1, code=500, next_attempt_at=T0 + 5)], T0 + 1) == [
        ("delivered", None), ("retry", None)]
    row, attempts = await store.get_delivery(second.id)
    assert (row.status, row.attempts, row.next_attempt_at, row.last_status_code) == (
        "pending", 1, T0 + 5, 500)
    assert [(a.outcome, a.status_code) for a in attempts] == [("retry", 500)]
    done, _ = await store.get_delivery(first.id)
    assert (done.status, done.delivered_at) == ("delivered", T0 + 1)
    assert await store.get_delivery("missing") is None
    # Retry by hand: a delivered one is queued again with a fresh schedule; a
    # pending one is due now, its schedule kept; one being sent is left be.
    assert (await store.retry_delivery(first.id, T0 + 2))[0] == "retried"
    state, row = await store.retry_delivery(second.id, T0 + 2)
    assert (state, row.status, row.attempts, row.next_attempt_at) == (
        "pulled", "pending", 1, T0 + 2)
    assert await store.retry_delivery("missing", T0 + 2) == ("not_found", None)
    [failing] = await store.claim_deliveries(T0 + 5, 1, 30, exclude=[("acme", "other")],)
    assert (await store.retry_delivery(failing.id, T0 + 6))[0] == "in_flight"
    await store.record_attempts([attempt(failing.id, "failed", T0 + 6, code=400)], T0 + 6)
    assert await store.replay_deliveries(T0, T0 + 7, endpoint_key="main") == (1, 0)
    assert [d.status for d in await store.list_deliveries(
        status=None, subscriber_id="acme", endpoint_key="main", limit=10)] == [
        "pending", "pending"]
    # A replay pulls forward what waits out a retry delay (and only that).
    [waiting] = await store.claim_deliveries(T0 + 8, 1, 30, exclude=[("acme", "main")])
    await store.record_attempts([attempt(waiting.id, "retry", T0 + 8, code=503,
                                         next_attempt_at=T0 + 100)], T0 + 8)
    assert await store.replay_deliveries(T0, T0 + 9) == (0, 1)
    assert (await store.get_delivery(waiting.id))[0].next_attempt_at == T0 + 9


async def test_410_disables_the_endpoint_and_fails_its_queue(store: Store) -> None:
    gone, waiting = delivery(), delivery()
    await store.add_deliveries([gone, waiting], T0)
    [claimed] = await store.claim_deliveries(T0, 1, 30)
    assert await store.record_attempts([attempt(claimed.id, "disabled", T0 + 1, code=410)],
                                       T0 + 1) == [("disabled", "HTTP 410 Gone")]
    [health] = await store.list_endpoint_health()
    assert (health.disabled_reason, health.failing_since, health.failed, health.pending) == (
        "HTTP 410 Gone", T0 + 1, 2, 0)
    left, _ = await store.get_delivery(waiting.id)
    assert (left.status, left.last_error) == ("failed", "endpoint disabled: HTTP 410 Gone")
    # New deliveries to it are recorded failed at once, until it is enabled.
    late = delivery()
    await store.add_deliveries([late], T0 + 2)
    assert await store.delivery_queue_depth() == 0
    assert await store.enable_endpoint("main", "acme") == 1
    assert await store.enable_endpoint("main", "acme") == 0
    assert await store.replay_deliveries(T0, T0 + 3, subscriber_id="acme") == (3, 0)
    assert len(await store.claim_deliveries(T0 + 3, 10, 30)) == 3


async def test_a_batch_of_attempts_applies_in_order(store: Store) -> None:
    """One write, each attempt after the one before it: a 410 disables the
    endpoint, so a retry after it in the same batch ends failed."""
    gone, after = delivery(), delivery()
    await store.add_deliveries([gone, after], T0)
    first, second = await store.claim_deliveries(T0, 2, 30)
    assert await store.record_attempts([
        attempt(first.id, "disabled", T0 + 1, code=410),
        attempt(second.id, "retry", T0 + 1, code=503, next_attempt_at=T0 + 10)], T0 + 1) == [
        ("disabled", "HTTP 410 Gone"), ("failed", None)]
    for row in (first, second):
        got = await store.get_delivery(row.id)
        assert got is not None and got[0].status == "failed" and len(got[1]) == 1


async def test_an_endpoint_failing_too_long_is_disabled(store: Store) -> None:
    first, second = delivery(), delivery()
    await store.add_deliveries([first, second], T0)
    [one] = await store.claim_deliveries(T0, 1, 30)
    await store.record_attempts([attempt(one.id, "retry", T0, code=503,
                                         next_attempt_at=T0 + 10)], T0)
    [two] = await store.claim_deliveries(T0 + 5 * DAY, 1, 30)
    [(outcome, reason)] = await store.record_attempts([
        attempt(two.id, "retry", T0 + 5 * DAY, code=503, next_attempt_at=T0 + 6 * DAY)],
        T0 + 5 * DAY)
    assert outcome == "failed" and reason is not None and reason.startswith("failing for")


async def test_delivery_claims_are_leased_and_released(store: Store) -> None:
    d = delivery()
    now = time.time()  # a release makes claims due as of the wall clock
    await store.add_deliveries([d], now)
    # due_by: only deliveries due by then (say, those that have waited a while).
    assert await store.claim_deliveries(now, 10, 3600, due_by=now - 1) == []
    assert [r.id for r in await store.claim_deliveries(now, 10, 3600)] == [d.id]
    assert await store.claim_deliveries(now + 1, 10, 3600) == []
    await store.release_delivery_claims()
    assert [r.id for r in await store.claim_deliveries(time.time(), 10, 3600)] == [d.id]


# ---- operations and views


async def test_opt_out_by_hand(store: Store) -> None:
    await store.commit_inbound(registered(message(), reply=None, keyword="acme"), T0)
    seen: list[InboundContext] = []

    def route(ctx: InboundContext) -> list[DeliveryDraft]:
        seen.append(ctx)
        return [delivery(event="user.opted_out")]

    out = await store.opt_out(ES, [1, 2], "en", T0 + 5, route)
    assert [(reg.instance_id, reg.status, reg.opted_out_at, before)
            for reg, before in out] == [(1, "opted_out", T0 + 5, "active"),
                                        (2, "opted_out", T0 + 5, None)]
    assert out[1][0].locale == "en"
    assert [ctx.keyword_at for ctx in seen] == [T0]
    assert await store.delivery_queue_depth() == 1
    # Again: nothing changes, nothing is routed.
    again = await store.opt_out(ES, [1], "en", T0 + 9, route)
    assert [(reg.opted_out_at, before) for reg, before in again] == [(T0 + 5, "opted_out")]
    assert len(seen) == 1


async def test_admin_lists(store: Store) -> None:
    await store.commit_inbound(registered(message(sender=ES)), T0)
    await store.commit_inbound(registered(message(sender=DE, instance=2)), T0 + 1)
    await store.opt_out(DE, [2], "en", T0 + 2)
    active = await store.list_registrations(instance_id=None, status="active", limit=10)
    assert [r.number for r in active] == [ES]
    assert [r.number for r in await store.list_registrations(
        instance_id=2, status=None, limit=10)] == [DE]
    assert len(await store.list_registrations(instance_id=None, status=None, limit=1)) == 1
    assert [r.to for r in await store.list_outbox(instance_id=2, to=None, limit=10)] == [DE]
    log = await store.list_messages(direction=None, instance_id=None, number=None, limit=10)
    assert [(m.direction, m.number, m.at) for m in log] == [
        ("in", ES, T0), ("out", ES, T0), ("in", DE, T0 + 1), ("out", DE, T0 + 1)]
    assert log[0].id.startswith("sandbox:") and log[1].status == "queued"
    incoming = await store.list_messages(direction="in", instance_id=2, number=DE, limit=10)
    assert [(m.direction, m.text) for m in incoming] == [("in", "Hola")]
    assert [m.direction for m in await store.list_messages(
        direction="out", instance_id=None, number=ES, limit=10)] == ["out"]
    await store.ping()
    await store.settled()



async def booked_slots(store: Store, instance_id: int, interval: float, count: int
                       ) -> list[float]:
    """When each of `count` reservations may send, on this clock: the call's
    start plus the delay it was given (off by at most the call's duration)."""
    slots = []
    for _ in range(count):
        start = time.monotonic()
        slots.append(start + await store.reserve_pace(instance_id, interval))
    return slots


async def test_a_numbers_pace_books_slots_one_interval_apart(store: Store) -> None:
    # Five sends booked at once for one number get slots a second apart, the
    # first at once; another number has a pace of its own.
    start = time.monotonic()
    slots = await booked_slots(store, 1, 1.0, 5)
    assert slots[0] - start < 0.5
    assert all(0.75 < later - earlier < 1.25 for earlier, later in itertools.pairwise(slots))
    assert await store.reserve_pace(2, 1.0) < 0.5


async def test_media_kept_for_a_provider_to_fetch_go_with_its_first_status(
        store: Store) -> None:
    # Twilio fetches a message's media by URL after accepting it: they stay
    # until the provider reports on the message, then go.
    row_id = await sent_message(store, "SM-keep", keep_media=True)
    assert await store.outbound_media(row_id) == b"\x89PNG"
    await store.apply_status(status("SM-keep", "delivered"), T0 + 2)
    assert await store.outbound_media(row_id) is None
    # A status that came before the send was recorded: fetched already.
    await store.apply_status(status("SM-early", "delivered"), T0)
    early_id = await sent_message(store, "SM-early", keep_media=True)
    assert await store.outbound_media(early_id) is None


# ---- dashboards


async def test_dashboard_searches_and_activity(store: Store) -> None:
    await store.commit_inbound(registered(message(ES)), T0)
    await store.commit_inbound(registered(message(DE, instance=2), reply=None), T0 + 30)
    found = await store.search_registrations(number="3460", locale=None, status=None,
                                             instance_id=None, limit=10)
    assert [r.number for r in found] == [ES]
    for wildcard in ("%", "_"):  # taken literally, not as LIKE's wildcards
        assert await store.search_registrations(number=wildcard, locale=None, status=None,
                                                instance_id=None, limit=10) == []
    newest_first = await store.search_registrations(number=None, locale="es", status="active",
                                                    instance_id=None, limit=10)
    assert [r.number for r in newest_first] == [DE, ES]

    await store.enqueue([api_send(text="one"), api_send(text="two", subscriber="beta")], T0 + 40)
    [second] = [r for r in await store.claim_outbound(T0 + 40, 10, 60) if r.text == "two"]
    await store.mark_failed(second.id, 131026, "Message undeliverable", T0 + 41)
    failed = await store.search_outbound(subscriber_id="beta", status="failed",
                                         error_code=131026, instance_id=1, limit=10)
    assert [m.text for m in failed] == ["two"]
    # "queued" holds what is being sent too; the confirmation queued at T0 is there.
    queued = await store.search_outbound(subscriber_id=None, status="queued", error_code=None,
                                         instance_id=None, limit=10)
    assert [m.text for m in queued] == ["one", "registered"]

    activity = {a.instance_id: a for a in await store.activity(since=T0 - 60, now=T0 + 60,
                                                               buckets=4)}
    assert activity[1].inbound == (0, 0, 1, 0) and activity[2].inbound == (0, 0, 0, 1)
    assert activity[1].outbound == (0, 0, 1, 2) and activity[2].outbound == (0, 0, 0, 0)
    assert activity[1].queued == 2


async def test_a_subscriber_id_is_data_whatever_its_characters(store: Store) -> None:
    await store.commit_inbound(registered(message(sender=ES), reply=None), T0)
    odd = "o'brien\\'); DROP TABLE send_quota; --"
    for n in range(2):
        sent = await store.accept_send(api_send(subscriber=odd), group_name=None,
                                       limits=limits(), now=T0 + 0.1 + n)
        assert (sent.status, sent.count, sent.period_start) == ("queued", n + 1, T0 + 0.1)
    assert (await store.send_usage(odd, DAY, T0 + 2)).count == 2
