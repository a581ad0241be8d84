"""The window, user ids, templates and costs in the store: the same assertions
on each backend."""

from __future__ import annotations

import dataclasses

from bot.effects import Effects, OutboundDraft
from bot.events import InboundMessage, StatusUpdate
from bot.store import Store
from bot.store.models import OutboundRow, Registration, SendOutcome
from tests.store_contract.test_ports import DAY, ES, T0, api_send, limits, message, registered

USER_ID = "US.13491208655302741918"


def by_user_id(text: str, *, number: str | None = None, at: float = T0) -> InboundMessage:
    base = message(number or USER_ID, text)
    return dataclasses.replace(base, user_id=USER_ID, timestamp=at)


async def test_the_users_own_message_opens_the_window(store: Store) -> None:
    await store.commit_inbound(registered(dataclasses.replace(message(), timestamp=T0 - 50)),
                               T0)
    (reg,) = await store.registrations_of(ES)
    assert reg.last_inbound_at == T0 - 50  # Meta's time, not ours
    # A later plain message moves it on; an older one (out of order) does not.
    await store.commit_inbound(Effects(inbound=dataclasses.replace(
        message(text="ok"), timestamp=T0 + 100)), T0 + 101)
    await store.commit_inbound(Effects(inbound=dataclasses.replace(
        message(text="old"), timestamp=T0 - 500)), T0 + 102)
    # A timestamp ahead of our clock counts as received now.
    (reg,) = await store.registrations_of(ES)
    assert reg.last_inbound_at == T0 + 100
    await store.commit_inbound(Effects(inbound=dataclasses.replace(
        message(text="ahead"), timestamp=T0 + 9999)), T0 + 200)
    (reg,) = await store.registrations_of(ES)
    assert reg.last_inbound_at == T0 + 200


async def test_a_user_known_by_id_then_by_both_is_one_registration(store: Store) -> None:
    await store.commit_inbound(registered(by_user_id("Hi")), T0)
    (reg,) = await store.registrations_of(USER_ID)
    assert reg.number == USER_ID and reg.user_id == USER_ID
    assert (await store.accept_send(api_send(to=USER_ID), group_name=None, limits=limits(),
                                    now=T0 + 1)).queued
    await store.commit_inbound(Effects(inbound=by_user_id("thanks", number=ES,
                                                          at=T0 + 10)), T0 + 10)
    (reg,) = await store.registrations_of(USER_ID)
    assert (reg.number, reg.user_id, reg.last_inbound_at) == (ES, USER_ID, T0 + 10)
    assert await store.registrations_of(ES) == [reg]
    # Both names reach it, and the recipient is counted once.
    for to in (USER_ID, ES):
        outcome = await store.accept_send(api_send(to=to), group_name=None, limits=limits(),
                                          now=T0 + 20)
        assert outcome.queued
        row = await store.get_outbound(outcome.message_id or "")
        assert row is not None and row.to == ES
    assert (await store.send_usage("acme", DAY, T0 + 20)).recipients == 1
    # A message by id only finds the number's registration.
    state = await store.load_inbound_context(1, USER_ID, None, USER_ID)
    assert state.registration is not None and state.registration.number == ES


async def test_fit_refuses_or_reshapes_a_send_in_its_transaction(store: Store) -> None:
    await store.commit_inbound(registered(message()), T0)
    seen: list[Registration] = []

    def refuse(draft: OutboundDraft, reg: Registration) -> OutboundDraft | SendOutcome:
        seen.append(reg)
        return SendOutcome(status="outside_window", window_closed_at=T0 + DAY)

    outcome = await store.accept_send(api_send(), group_name=None, limits=limits(),
                                      now=T0 + 2 * DAY, fit=refuse)
    assert outcome.status == "outside_window" and outcome.window_closed_at == T0 + DAY
    assert seen[0].last_inbound_at == T0
    assert (await store.send_usage("acme", DAY, T0 + 2 * DAY)).count == 0  # nothing counted

    def as_template(draft: OutboundDraft, reg: Registration) -> OutboundDraft | SendOutcome:
        return dataclasses.replace(draft, template='{"name":"t","language":"es"}')

    outcome = await store.accept_send(api_send(), group_name=None, limits=limits(),
                                      now=T0 + 2 * DAY, fit=as_template)
    row = await store.get_outbound(outcome.message_id or "")
    assert row is not None and row.template == '{"name":"t","language":"es"}'


async def test_resend_as_template_and_costs(store: Store) -> None:
    await store.commit_inbound(registered(message(), reply=None), T0)
    outcome = await store.accept_send(api_send(), group_name=None, limits=limits(), now=T0)
    msg_id = outcome.message_id or ""
    assert len(await store.claim_outbound(T0, 10, 60.0, holder="w")) == 1
    await store.mark_sent(msg_id, "wamid.1", T0 + 1)
    calls: list[tuple[OutboundRow, str | None, bool]] = []

    def build(row: OutboundRow, locale: str | None, has_media: bool) -> str | None:
        calls.append((row, locale, has_media))
        return '{"name":"n"}'

    again = await store.resend_as_template(build, T0 + 2, provider_message_id="wamid.1")
    assert again is not None and again.status == "queued" and again.template == '{"name":"n"}'
    assert calls[0][1] == "es" and calls[0][2] is False
    assert [r.id for r in await store.claim_outbound(T0 + 3, 10, 60.0, holder="w")] == [msg_id]
    await store.mark_sent(msg_id, "wamid.2", T0 + 4)
    # Pricing, told with sent and delivered alike, is kept and counted once.
    for word in ("sent", "delivered"):
        await store.apply_status(StatusUpdate(
            provider="meta", provider_message_id="wamid.2", instance_id=1, status=word,
            timestamp=T0 + 5, pricing_category="utility", billable=True), T0 + 5)
    row = await store.get_outbound(msg_id)
    assert row is not None and (row.pricing_category, row.billable) == ("utility", True)
    (cost,) = await store.costs()
    assert (cost.subscriber_id, cost.category, cost.billable, cost.messages) == (
        "acme", "utility", True, 1)
    # A delivered message is not sent again.
    assert await store.resend_as_template(build, T0 + 6, message_id=msg_id) is None
