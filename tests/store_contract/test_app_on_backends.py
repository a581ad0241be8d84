"""The service end to end on each backend, and two services sharing one
PostgreSQL database as two processes would.

The single-service tests are the suite's own, imported from their modules:
here `make_config` (tests/store_contract/conftest.py) points `[storage] url`
at the test's backend, so each runs through create_app on SQLite and on
PostgreSQL. A handful only: the contract suite covers the store itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import Config
from tests.conftest import outbox, say
from tests.send_helpers import plan, send, subscriber, usage
from tests.test_media import (
    make,
    test_forged_changed_and_expired_links_are_refused,
    test_meta_files_of_each_kind_reach_the_subscriber_by_their_link,
    test_twilio_media_url_is_fetched_with_the_account_credentials,
    twilio,
    waha,
    waha_state,
)
from tests.test_registration import (
    REGISTERED,
    expected,
    test_concurrent_greetings_from_one_user_confirm_once,
    test_group_registration,
    test_redelivered_message_changes_nothing,
    test_stop_then_hi_again,
)
from tests.test_send_quota import (
    test_15_concurrent_new_recipients_at_a_limit_of_10,
    test_60_concurrent_sends_at_a_limit_of_50,
)
from tests.test_webhooks_delivery import (
    test_410_disables_the_endpoint_until_enabled,
    test_500_then_success_keeps_the_webhook_id,
)
from tests.test_window import (
    test_a_message_with_number_and_user_id_links_them,
    test_a_user_known_only_by_user_id_registers_receives_and_opts_out,
    test_an_asynchronous_131047_sends_it_again_as_the_template,
    test_outside_the_window_the_template_goes_in_the_users_language,
    test_outside_the_window_without_a_template_is_refused_475,
    test_pricing_is_recorded_per_message_and_counted,
)

__all__ = [
    "make",
    "test_15_concurrent_new_recipients_at_a_limit_of_10",
    "test_60_concurrent_sends_at_a_limit_of_50",
    "test_410_disables_the_endpoint_until_enabled",
    "test_500_then_success_keeps_the_webhook_id",
    "test_a_message_with_number_and_user_id_links_them",
    "test_a_user_known_only_by_user_id_registers_receives_and_opts_out",
    "test_an_asynchronous_131047_sends_it_again_as_the_template",
    "test_concurrent_greetings_from_one_user_confirm_once",
    "test_forged_changed_and_expired_links_are_refused",
    "test_group_registration",
    "test_meta_files_of_each_kind_reach_the_subscriber_by_their_link",
    "test_outside_the_window_the_template_goes_in_the_users_language",
    "test_outside_the_window_without_a_template_is_refused_475",
    "test_pricing_is_recorded_per_message_and_counted",
    "test_redelivered_message_changes_nothing",
    "test_stop_then_hi_again",
    "test_twilio_media_url_is_fetched_with_the_account_credentials",
    "twilio",
    "waha",
    "waha_state",
]

ES = "+34600000001"
AppClient = Callable[..., Awaitable[TestClient]]


async def two_services(aiohttp_client: AppClient, config: Config
                       ) -> tuple[TestClient, TestClient]:
    """Two whole services (stores, pipelines, workers) on one database."""
    return (await aiohttp_client(create_app(config)), await aiohttp_client(create_app(config)))


# Two processes on one database: PostgreSQL only (SQLite serves one process).
shared_database = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@shared_database
async def test_two_services_confirm_a_greeting_once(aiohttp_client: AppClient,
                                                    make_config: Callable[..., Config]) -> None:
    a, b = await two_services(aiohttp_client, make_config())
    await asyncio.gather(*(say((a, b)[n % 2], "Hola", sender=ES) for n in range(10)))
    assert [m["text"] for m in await outbox(a, to=ES)] == [expected("es", REGISTERED)]
    assert [m["text"] for m in await outbox(b, to=ES)] == [expected("es", REGISTERED)]


@shared_database
async def test_two_services_share_one_quota(aiohttp_client: AppClient,
                                            make_config: Callable[..., Config]) -> None:
    config = make_config(plan("burst", messages=20, recipients=5)
                         + subscriber("acme", "dev@acme.example", "acme-secret", plan="burst"))
    a, b = await two_services(aiohttp_client, config)
    await say(a, "Hola", sender=ES)
    body = {"number": ES, "message": "flash sale"}
    answers = await asyncio.gather(*(send((a, b)[n % 2], "single", "text", body)
                                     for n in range(40)))
    assert sorted(r.status for r in answers) == [200] * 20 + [469] * 20
    assert await usage(a) == await usage(b) == (20, 1)
