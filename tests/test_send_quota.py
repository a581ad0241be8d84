"""Plans and quotas: atomic under concurrency, the 24-hour period, trial turning
into forever_green, expiry. Time moves through the app's clock, never sleep."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from bot.config.load import parse_config
from bot.subscribers import add_months, authenticate, may_use, subscription_on
from bot.web.keys import clock_key
from tests.conftest import ROOT, say, wait_sent
from tests.send_helpers import plan, send, sent_by, subscriber, usage

ES = "+34600000001"
DAY = 24 * 3600.0

MakeClient = Callable[..., Awaitable[TestClient]]


async def test_60_concurrent_sends_at_a_limit_of_50(make_client: MakeClient) -> None:
    client = await make_client(plan("burst", messages=50, recipients=10)
                               + subscriber("acme", "dev@acme.example", "acme-secret",
                                            plan="burst"))
    await say(client, "Hola", sender=ES)
    body = {"number": ES, "message": "flash sale"}
    answers = await asyncio.gather(*(send(client, "single", "text", body) for _ in range(60)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [200] * 50 + [469] * 10
    refused = [r for r in answers if r.status == 469]
    assert all(int(r.headers["Retry-After"]) > DAY - 60 for r in refused)
    assert await usage(client) == (50, 1)
    await wait_sent(client)
    assert len(await sent_by(client)) == 50


async def test_15_concurrent_new_recipients_at_a_limit_of_10(make_client: MakeClient) -> None:
    client = await make_client(plan("few", messages=100, recipients=10)
                               + subscriber("acme", "dev@acme.example", "acme-secret",
                                            plan="few"))
    numbers = [f"+346000001{i:02d}" for i in range(15)]
    for number in numbers:
        await say(client, "Hola", sender=number)
    answers = await asyncio.gather(*(send(client, "single", "text",
                                          {"number": n, "message": "hi"}) for n in numbers))
    statuses = sorted(r.status for r in answers)
    assert statuses == [200] * 10 + [473] * 5
    assert {(await r.json())["error"] for r in answers if r.status == 473} == {"recipient_limit"}
    assert await usage(client) == (10, 10)
    # A recipient already counted is no new one: sending again to it still works.
    accepted = [n for n, r in zip(numbers, answers, strict=True) if r.status == 200]
    assert (await send(client, "single", "text", {"number": accepted[0], "message": "x"})
            ).status == 200
    refused = [n for n, r in zip(numbers, answers, strict=True) if r.status == 473]
    assert (await send(client, "single", "text", {"number": refused[0], "message": "x"})
            ).status == 473


async def test_quota_period_starts_with_first_send_and_resets(make_client: MakeClient) -> None:
    client = await make_client(plan("two", messages=2, recipients=5)
                               + subscriber("acme", "dev@acme.example", "acme-secret",
                                            plan="two"))
    await say(client, "Hola", sender=ES)
    clock = client.app[clock_key]
    body = {"number": ES, "message": "x"}
    assert await usage(client) == (0, 0)  # no period runs before the first send
    clock.shift(-25 * 3600)  # yesterday, an hour before this time
    start = clock.now()
    assert (await send(client, "single", "text", body)).status == 200
    sent_by_then = clock.now()
    clock.shift(3600)
    assert (await send(client, "single", "text", body)).status == 200
    clock.shift(3600)
    refused = await send(client, "single", "text", body)
    assert refused.status == 469
    answer = await refused.json()
    reset = dt.datetime.fromisoformat(answer["reset_at"].replace("Z", "+00:00")).timestamp()
    # The period began at the first send (however long it took on a loaded machine).
    assert start + DAY - 0.001 <= reset <= sent_by_then + DAY + 0.001
    assert abs(int(refused.headers["Retry-After"]) - (DAY - 2 * 3600)) <= 1
    assert answer["error"] == "quota_exceeded" and answer["limit"] == 2
    assert answer["reset_at"] in answer["error_message"]
    assert (await send(client, "single", "text", body)).status == 469
    assert await usage(client) == (2, 1)  # refused sends are not counted
    clock.shift(DAY - 2 * 3600 - 1)  # one second before the reset
    assert (await send(client, "single", "text", body)).status == 469
    clock.shift(1)  # the period is over: the next send starts a new one
    assert (await send(client, "single", "text", body)).status == 200
    assert await usage(client) == (1, 1)
    await wait_sent(client)
    assert len(await sent_by(client)) == 3


TRIAL = ("\n[plans.trial]\nmessages_per_day = 1\n"
         "\n[plans.forever_green]\nmessages_per_day = 2\n")


@pytest.mark.parametrize(("since_days", "allowed"), [(0, 1), (-13, 1), (-14, 2), (-200, 2)])
async def test_trial_becomes_forever_green_after_14_days(make_client: MakeClient,
                                                         since_days: int, allowed: int) -> None:
    client = await make_client(TRIAL + subscriber("acme", "dev@acme.example", "acme-secret",
                                                  plan="trial", since_days=since_days))
    await say(client, "Hola", sender=ES)
    statuses = [(await send(client, "single", "text", {"number": ES, "message": "x"})).status
                for _ in range(3)]
    assert statuses == [200] * allowed + [469] * (3 - allowed)


@pytest.mark.parametrize(("expires_days", "status"), [(1, 200), (0, 474), (-1, 474)])
async def test_expiry(make_client: MakeClient, expires_days: int, status: int) -> None:
    client = await make_client(subscriber("acme", "dev@acme.example", "acme-secret",
                                          since_days=-100, expires_days=expires_days))
    await say(client, "Hola", sender=ES)
    resp = await send(client, "single", "text", {"number": ES, "message": "x"})
    assert resp.status == status
    if status == 474:
        assert (await resp.json())["error"] == "subscription_expired"
        assert await usage(client) == (0, 0)


async def test_expiry_follows_the_clock(make_client: MakeClient) -> None:
    client = await make_client(subscriber("acme", "dev@acme.example", "acme-secret",
                                          since_days=-100, expires_days=2))
    await say(client, "Hola", sender=ES)
    body = {"number": ES, "message": "x"}
    assert (await send(client, "single", "text", body)).status == 200
    client.app[clock_key].shift(2 * DAY)
    assert (await send(client, "single", "text", body)).status == 474


# ---- the plan rules as pure functions


def _config(extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return parse_config(env=env or {}, text='[admin]\ntoken = "admin-token-long-enough"\n'
                        f'[locales]\n'
                        f'dir = "{ROOT / "locales"}"\n'
                        '[[instances]]\nid = 1\nnumber = "+15550001111"\n'
                        '[[instances]]\nid = 2\nnumber = "+15550002222"\nowner = "acme"\n'
                        + extra)


def test_subscription_rules() -> None:
    config = _config('[[subscribers]]\nid = "acme"\nclient_id = "a"\nsecret = "s"\n'
                     'plan = "trial"\nsince = 2026-01-10\nexpires = 2028-06-01\n')
    sub = config.subscribers["acme"]
    on = lambda day: subscription_on(sub, config.plans, day)  # noqa: E731
    assert on(dt.date(2026, 1, 9)).state == "not_started"
    first = on(dt.date(2026, 1, 23))
    assert first.plan.name == "trial" and first.active and first.plan_since == dt.date(2026, 1, 10)
    green = on(dt.date(2026, 1, 24))
    assert green.plan.name == "forever_green" and green.plan_since == dt.date(2026, 1, 24)
    # `expires` is capped at max_months (12) after forever_green began
    assert green.ends == dt.date(2027, 1, 24)
    assert on(dt.date(2027, 1, 23)).active and on(dt.date(2027, 1, 24)).state == "expired"


def test_a_plan_that_just_ends_and_open_ended_ones() -> None:
    config = _config('[plans.pilot]\nmessages_per_day = 5\nmax_recipients = 5\n'
                     'expires_after_days = 30\n'
                     '[[subscribers]]\nid = "acme"\nclient_id = "a"\nsecret = "s"\n'
                     'plan = "pilot"\nsince = 2026-01-01\n'
                     '[[subscribers]]\nid = "b"\nclient_id = "b"\nsecret = "s"\n'
                     'plan = "enterprise"\nsince = 2020-01-01\n')
    pilot = config.subscribers["acme"]
    assert subscription_on(pilot, config.plans, dt.date(2026, 1, 30)).active
    assert subscription_on(pilot, config.plans, dt.date(2026, 1, 31)).state == "expired"
    open_ended = subscription_on(config.subscribers["b"], config.plans, dt.date(2030, 1, 1))
    assert open_ended.active and open_ended.ends is None


def test_add_months_clamps() -> None:
    assert add_months(dt.date(2026, 1, 31), 1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2026, 11, 1), 12) == dt.date(2027, 11, 1)
    assert add_months(dt.date(2024, 2, 29), 12) == dt.date(2025, 2, 28)


def test_authenticate_and_instances() -> None:
    config = _config('[[subscribers]]\nid = "acme"\nclient_id = "a"\nsecret = "s3cret"\n'
                     'instances = [1]\n'
                     '[[subscribers]]\nid = "b"\nclient_id = "b"\nsecret = "x"\n'
                     'instances = [1, 2]\n')
    assert authenticate(config, "a", "s3cret", 0.0) is config.subscribers["acme"]
    assert authenticate(config, "a", "s3cret ", 0.0) is None
    assert authenticate(config, "zz", "s3cret", 0.0) is None
    acme, b = config.subscribers["acme"], config.subscribers["b"]
    one, two = config.instances[1], config.instances[2]
    assert may_use(acme, one) and may_use(acme, two)  # its own dedicated number
    assert may_use(b, one) and not may_use(b, two)  # listed, but owned by acme


def test_secret_from_the_environment() -> None:
    config = _config('[[subscribers]]\nid = "acme"\nclient_id = "a"\nsecret_env = "ACME_SECRET"\n',
                     env={"ACME_SECRET": "from-env"})
    assert authenticate(config, "a", "from-env", 0.0) is config.subscribers["acme"]
    assert authenticate(config, "a", "ACME_SECRET", 0.0) is None
