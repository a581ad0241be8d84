"""Signing-secret overlap: while an endpoint's earlier signing secret is still
valid, each delivery carries one signature per valid secret (Standard
Webhooks' space-separated `v1,<a> v1,<b>`), so a receiver holding either the
new or the old secret verifies it with the official validator; once the
earlier one's time is past it no longer signs. The same headers reach HTTP
endpoints and every broker."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import WebhookVerificationError

from bot.config import ConfigError
from tests.brokers import Broker
from tests.conftest import say, wait_for
from tests.test_webhooks_brokers import broker, hook_toml  # noqa: F401 (the fixture)
from tests.webhook_helpers import ACME_SECRET, Hit, Receiver, subscribers_toml, verify

MakeClient = Callable[..., Awaitable[TestClient]]
OLD = "whsec_" + base64.b64encode(b"old-signing-key-0123456789abcdef").decode()
GONE = "whsec_" + base64.b64encode(b"gone-signing-key-0123456789abcde").decode()
OVERLAP = f"""
        [[subscribers.webhooks.earlier_secrets]]
        secret = "{OLD}"
        until = 2999-01-01T00:00:00Z

        [[subscribers.webhooks.earlier_secrets]]
        secret = "{GONE}"
        until = 2020-01-01T00:00:00+01:00
"""


def signed_by_each_valid_secret_only(hit: Hit) -> None:
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    for secret in (ACME_SECRET, OLD):
        assert verify(hit, secret)["data"]["text"] == "during the overlap"
    with pytest.raises(WebhookVerificationError):
        verify(hit, GONE)


async def test_during_an_overlap_both_secrets_sign_and_an_expired_one_does_not(
        make_client: MakeClient, receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base, acme_events=OVERLAP))
    await say(client, "during the overlap", sender="+34600000001", instance=3)
    hit = (await wait_for(lambda: receiver.on("/acme")))[0]
    signed_by_each_valid_secret_only(hit)
    # beta's endpoints have no earlier secret: one signature, as before.
    await say(client, "Hola BETA", sender="+34600000002")
    beta = (await wait_for(lambda: receiver.on("/beta")))[0]
    assert " " not in beta.headers["webhook-signature"]


async def test_a_broker_gets_the_same_signatures(
        make_client: MakeClient, receiver: Receiver,
        broker: Broker,  # noqa: F811 (the fixture)
) -> None:
    await broker.create()
    client = await make_client(subscribers_toml(
        receiver.base, extra_webhooks=hook_toml(broker.url(), OVERLAP)))
    await say(client, "during the overlap", sender="+34600000001", instance=3)
    [msg] = await broker.consume(1)
    signed_by_each_valid_secret_only(Hit("", msg.headers, msg.body, 0.0))


@pytest.mark.parametrize(("table", "message"), [
    ('secret = "whsec_"\nuntil = 2030-01-01T00:00:00Z', "must be non-empty base64"),
    (f'secret = "{OLD}"\nuntil = 2030-01-01T00:00:00', "needs its offset"),
    (f'secret = "{OLD}"\nuntil = 2030-01-01', "must be a date-time"),
    (f'secret = "{OLD}"', "until: is required"),
])
def test_an_earlier_secret_is_checked_at_load(make_config: Callable[..., object],
                                              receiver: Receiver, table: str,
                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(subscribers_toml(receiver.base, acme_events=(
            "\n        [[subscribers.webhooks.earlier_secrets]]\n        "
            + table.replace("\n", "\n        "))))
