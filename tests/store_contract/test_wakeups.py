"""Workers are woken one way: by the store, once what was queued has committed
(`Store.on_work`), on both stores; on PostgreSQL, other processes by NOTIFY,
and a process never by its own NOTIFY heard back.

The workers poll every 5 s when idle (bot/workers/: `_idle`): what must go at
once arriving within a second shows it was woken, not found by a poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import Config
from bot.effects import OutboundDraft
from bot.store import Store
from bot.store.postgres import PostgresStore
from bot.store.postgres.wakes import WINDOW, Wakes
from bot.web.keys import store_key
from tests.conftest import meta_text, post_signed, say, wait_for
from tests.graph import GraphState
from tests.store_contract.conftest import Backend
from tests.test_registration import REGISTERED, expected
from tests.webhook_helpers import Receiver, subscribers_toml

ES = "+34600000001"
PROMPT = 1.5  # seconds: well under the workers' 5 s poll
AppClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """As the suite's, but PostgreSQL in a database of the test's own: NOTIFY's
    channels are per database, and another test's NOTIFY would wake these
    workers too (a wake-up the test must not owe to anyone else)."""
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'wagate.db'}")
    return Backend("postgres", request.getfixturevalue("own_database"))


async def idle(client: TestClient) -> None:
    """Let the workers find their queues empty and start their idle wait."""
    await asyncio.sleep(0.5)


async def test_a_greeting_is_confirmed_at_graph_at_once(
        make_config: Callable[..., Config], graph_state: GraphState,
        aiohttp_client: AppClient) -> None:
    # (aiohttp_client last: the app closes before its database is dropped)
    client = await aiohttp_client(create_app(make_config()))
    await idle(client)
    started = time.monotonic()
    assert (await post_signed(client, meta_text("Hola", sender=ES[1:]))).status == 200
    [sent] = await wait_for(lambda: graph_state.messages, timeout=5)
    took = time.monotonic() - started
    assert sent.json["text"]["body"] == expected("es", REGISTERED)
    assert took < PROMPT, f"the confirmation reached Graph {took:.2f}s after the greeting"


async def test_a_webhook_reaches_the_receiver_at_once(
        make_config: Callable[..., Config], receiver: Receiver,
        aiohttp_client: AppClient) -> None:
    client = await aiohttp_client(create_app(make_config(subscribers_toml(receiver.base))))
    await idle(client)
    started = time.monotonic()
    await say(client, "order 66", sender=ES, instance=3)
    [hit] = await wait_for(lambda: receiver.on("/acme"), timeout=5)
    took = time.monotonic() - started
    assert hit.json["type"] == "message.received"
    assert took < PROMPT, f"the webhook reached the receiver {took:.2f}s after the message"


async def test_a_send_is_told_to_its_subscriber_at_once(
        make_config: Callable[..., Config], receiver: Receiver,
        aiohttp_client: AppClient) -> None:
    # Two wake-ups: the send queued, then its `message.status` sent, queued
    # with the mark (on PostgreSQL, in a batch of marks).
    client = await aiohttp_client(create_app(make_config(subscribers_toml(receiver.base))))
    await idle(client)
    started = time.monotonic()
    draft = OutboundDraft(instance_id=1, to=ES, text="hello", subscriber_id="acme")
    await client.app[store_key].enqueue([draft], time.time())
    [hit] = await wait_for(lambda: receiver.on("/acme"), timeout=5)
    took = time.monotonic() - started
    assert (hit.json["type"], hit.json["data"]["id"], hit.json["data"]["status"]) == (
        "message.status", draft.id, "sent")
    assert took < PROMPT, f"the subscriber heard of its send {took:.2f}s after it was queued"


async def test_a_commit_wakes_its_queue_once_and_a_rollback_nobody(store: Store) -> None:
    woken: list[str] = []
    await store.on_work("outbound", lambda: woken.append("outbound"))
    await store.on_work("deliveries", lambda: woken.append("deliveries"))
    draft = OutboundDraft(instance_id=1, to=ES, text="x")
    await store.enqueue([draft], time.time())
    assert woken == ["outbound"]  # by the time the unit's caller hears it committed
    with pytest.raises(Exception, match=r"(?i)unique"):  # the same message id again
        await store.enqueue([draft], time.time())
    await asyncio.sleep(0.3)  # on PostgreSQL, its own NOTIFY heard back: ignored
    assert woken == ["outbound"]


# ---------------------------------------------------------------- PostgreSQL

async def test_a_process_is_woken_by_its_commits_not_by_its_own_notify(
        own_database: str) -> None:
    a = await PostgresStore.open(own_database, worker_id="host-a:1")
    b = await PostgresStore.open(own_database, worker_id="host-b:2")
    outsider = await asyncpg.connect(own_database)
    try:
        woken = {"a": 0, "b": 0}

        def waking(name: str) -> Callable[[], None]:
            def wake() -> None:
                woken[name] += 1
            return wake

        await a.on_work("outbound", waking("a"))
        await b.on_work("outbound", waking("b"))
        await a.enqueue([OutboundDraft(instance_id=1, to=ES, text="x")], time.time())
        # a's worker is woken by the commit itself, before the enqueue returns...
        assert woken["a"] == 1
        # ...and b's by a's NOTIFY, which a hears back and ignores.
        await wait_for(lambda: woken["b"] == 1)
        await asyncio.sleep(0.3)  # past the coalescing window and any NOTIFY after it
        assert woken == {"a": 1, "b": 1}
        # A NOTIFY that names a as its sender wakes a never; any other does.
        await outsider.execute("SELECT pg_notify('wagate_outbound', $1)", a.worker_id)
        await outsider.execute("SELECT pg_notify('wagate_outbound', 'host-c:3')")
        await wait_for(lambda: woken == {"a": 2, "b": 3})
        await asyncio.sleep(0.3)
        assert woken == {"a": 2, "b": 3}
    finally:
        await outsider.close()
        await a.close()
        await b.close()


async def test_a_store_closing_while_a_window_ends_sends_each_notify_once() -> None:
    sent: list[str] = []
    started: list[asyncio.Future[None]] = []

    async def send(channel: str) -> None:
        sent.append(channel)
        await asyncio.sleep(WINDOW * 2)  # the other channel's window ends meanwhile

    wakes = Wakes(send, lambda work: started.append(asyncio.ensure_future(work)))
    wakes.now(["wagate_deliveries", "wagate_outbound"])
    wakes.after(["wagate_deliveries", "wagate_outbound"])
    await wakes.flush()
    await asyncio.gather(*started)
    assert sorted(sent) == ["wagate_deliveries", "wagate_outbound"]
