"""A delivery waiting for its next attempt, as the README's tour meets one: the
receiver was not up, the next attempt is minutes away. Every view says when it
goes; "retry now" sends it now instead of answering that it is queued; a replay
says what it did with the pending ones (issue 23, item 2)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.cli import main
from tests.conftest import ADMIN, say, wait_for
from tests.ui_helpers import login
from tests.webhook_helpers import Receiver, deliveries, settled, subscribers_toml

U = "+34600000001"
ACME_API = {"X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "acme-api-secret"}
LATER = 300.0  # the next attempt after a first failure: minutes away, as by default


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base).replace(
        "retry_schedule = [0, 0.2, 0.4]", f"retry_schedule = [0, {LATER}, {LATER * 2}]"))


def at(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def waiting(client: TestClient, receiver: Receiver, text: str) -> dict[str, object]:
    """A delivery whose first attempt failed: pending, its next attempt minutes away."""
    receiver.script("/acme", (503, {}, 0.0))
    before = len(await deliveries(client))
    await say(client, text, sender=U, instance=3)

    async def failed_once() -> dict[str, object] | None:
        rows = await deliveries(client)
        return rows[0] if len(rows) > before and rows[0]["attempts"] == 1 else None
    return await wait_for(failed_once)


async def cli(config: Path, *argv: str, url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`wagate ...` against the test service (on a thread: the service runs on this loop)."""
    code = await asyncio.to_thread(main, [*argv, "--config", str(config), "--url", url])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


async def test_a_pending_delivery_says_when_and_retry_sends_it_now(
        client: TestClient, receiver: Receiver, config_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    d = await waiting(client, receiver, "one")
    assert d["status"] == "pending" and d["next_attempt_at"] is not None
    assert at(str(d["next_attempt_at"])) > time.time() + LATER / 2
    url = str(client.make_url("")).rstrip("/")
    listed = await cli(config_path, "deliveries", "list", url=url, capsys=capsys)
    assert f"next attempt {d['next_attempt_at']}" in listed

    resp = await client.post(f"/admin/deliveries/{d['id']}/retry", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["retry"] == "pulled_forward"
    assert at(body["delivery"]["next_attempt_at"]) <= time.time()
    [done] = await settled(client, 1)
    # sent at once, its schedule kept: the second attempt, not a fresh first
    assert done["status"] == "delivered" and done["attempts"] == 2
    assert len(receiver.on("/acme")) == 2

    # The CLI says the same, and a replay says what it did with pending ones.
    d = await waiting(client, receiver, "two")
    out = await cli(config_path, "deliveries", "retry", str(d["id"]), url=url, capsys=capsys)
    assert out.strip() == f"{d['id']}: pulled forward, due now"
    await settled(client, 2)
    d = await waiting(client, receiver, "three")
    out = await cli(config_path, "deliveries", "replay", "--since", "2020-01-01", url=url,
                    capsys=capsys)
    assert out.strip() == ("since 2020-01-01T00:00:00.000Z: 0 failed queued again, "
                           "1 pending pulled forward")
    assert {r["status"] for r in await settled(client, 3)} == {"delivered"}


async def test_a_subscriber_pulls_its_own_forward(client: TestClient,
                                                  receiver: Receiver) -> None:
    d = await waiting(client, receiver, "mine")
    own = await (await client.get("/v3/account/deliveries", headers=ACME_API)).json()
    assert own["deliveries"][0]["next_attempt_at"] == d["next_attempt_at"]
    d2 = await waiting(client, receiver, "mine too")
    resp = await client.post(f"/v3/account/deliveries/{d['id']}/retry", headers=ACME_API)
    assert resp.status == 200 and (await resp.json())["retry"] == "pulled_forward"
    resp = await client.post("/v3/account/deliveries/replay", headers=ACME_API,
                             params={"since": "2020-01-01"})
    assert resp.status == 200
    assert (await resp.json())["pulled_forward"] == 1  # d2; d is due already
    assert {r["status"] for r in await settled(client, 2)} == {"delivered"}
    assert d2["id"] != d["id"]


async def test_one_being_sent_right_now_is_left_to_finish(client: TestClient,
                                                          receiver: Receiver) -> None:
    receiver.script("/acme", (200, {}, 1.0))
    await say(client, "slow", sender=U, instance=3)
    await wait_for(lambda: receiver.inflight == 1)
    [d] = await deliveries(client)
    resp = await client.post(f"/admin/deliveries/{d['id']}/retry", headers=ADMIN)
    assert resp.status == 409
    assert (await resp.json())["error_message"] == ("this delivery is being sent right now; "
                                                    "its outcome shows in a moment")
    [done] = await settled(client, 1)
    assert done["attempts"] == 1 and len(receiver.on("/acme")) == 1


async def test_the_pages_show_the_next_attempt_and_send_now(client: TestClient,
                                                            receiver: Receiver) -> None:
    d = await waiting(client, receiver, "page")
    assert (await login(client)).status == 303
    page = await (await client.get("/ui/deliveries")).text()
    shown = dt.datetime.fromtimestamp(at(str(d["next_attempt_at"])), dt.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC")
    assert "<th>Next attempt</th>" in page and f'<td class="next-attempt">{shown}</td>' in page
