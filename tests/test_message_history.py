"""A message's recorded status history, over HTTP: the dashboard's and the
portal's message pages and the send API's message answer show each change the
store recorded, with the provider's error; a subscriber sees only its own."""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.store import SqliteStore
from bot.store.sqlite import MIGRATIONS
from bot.web.keys import store_key
from tests.conftest import ADMIN, PNID, meta_text, post_signed, say, wait_for, wait_sent
from tests.graph import GraphState
from tests.send_helpers import DEFAULT, send
from tests.ui_helpers import ACME_API, ACME_LOGIN, BETA_API, BETA_LOGIN, login
from tests.webhook_helpers import Receiver, subscribers_toml

U = "+34600000001"
_ROW = re.compile(r'<tr class="status (\w+)"><td>[^<]*</td><td>[^<]*</td>\s*'
                  r'<td class="error">([^<]*)</td></tr>')


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


DEFAULT_API = {"X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "acme-secret"}


async def _status_is(answer: Awaitable[dict[str, Any]], status: str) -> bool:
    return (await answer)["status"] == status


def history_rows(page: str) -> list[tuple[str, str]]:
    """(status, error) per row of a message page's history table."""
    return [(status, html.unescape(error).strip()) for status, error in _ROW.findall(page)]


async def send_text(client: TestClient, headers: dict[str, str], text: str) -> str:
    resp = await client.post("/v3/whatsapp/single/text/message/1", headers=headers,
                             json={"number": U, "message": text})
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["id"])


async def provider_says(client: TestClient, message_id: str, status: str,
                        error: dict[str, Any] | None = None) -> bool:
    body: dict[str, Any] = {"id": message_id, "status": status}
    if error is not None:
        body["error"] = error
    resp = await client.post("/sandbox/status", headers=ADMIN, json=body)
    assert resp.status == 200, await resp.text()
    return bool((await resp.json())["applied"])


async def test_message_pages_and_api_show_the_recorded_history(client: TestClient) -> None:
    await say(client, "Hola", sender=U)
    beta_msg = await send_text(client, BETA_API, "for beta's eyes")
    acme_msg = await send_text(client, ACME_API, "acme's own")
    await wait_sent(client)
    assert await provider_says(client, beta_msg, "delivered")
    assert await provider_says(client, beta_msg, "failed",
                               {"code": 131026, "title": "Message undeliverable"})
    # A late status the ordering rule ignores is not a change, so not history.
    assert not await provider_says(client, beta_msg, "read")
    expected = [("queued", ""), ("sent", ""), ("delivered", ""),
                ("failed", "131026 Message undeliverable")]

    await login(client)
    page = await client.get(f"/ui/messages/{beta_msg}")
    assert page.status == 200
    assert history_rows(await page.text()) == expected

    client.session.cookie_jar.clear()
    await login(client, "/portal/", BETA_LOGIN)
    page = await client.get(f"/portal/messages/{beta_msg}")
    assert page.status == 200
    assert history_rows(await page.text()) == expected
    # Another subscriber's message, and so its history, is not beta's to see.
    assert (await client.get(f"/portal/messages/{acme_msg}")).status == 404

    client.session.cookie_jar.clear()
    await login(client, "/portal/", ACME_LOGIN)
    assert (await client.get(f"/portal/messages/{beta_msg}")).status == 404
    page = await client.get(f"/portal/messages/{acme_msg}")
    assert history_rows(await page.text()) == [("queued", ""), ("sent", "")]

    resp = await client.get(f"/v3/whatsapp/messages/{beta_msg}", headers=BETA_API)
    assert resp.status == 200
    shown = await resp.json()
    assert [(e["status"], e["error"]) for e in shown["history"]] == [
        ("queued", None), ("sent", None), ("delivered", None),
        ("failed", {"code": 131026, "title": "Message undeliverable"})]
    assert all(e["at"].endswith("Z") for e in shown["history"])  # ISO 8601, UTC
    resp = await client.get(f"/v3/whatsapp/messages/{beta_msg}", headers=ACME_API)
    assert resp.status == 404
    assert "history" not in await resp.text()


async def test_messages_older_than_the_history_get_one_from_their_row(tmp_path: Path) -> None:
    """A database from before the history: each message's row tells its creation and
    its latest change, so the page shows those rather than nothing."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for script in MIGRATIONS[:6]:
            for statement in script.split(";"):
                db.execute(statement)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (6)")
        db.executemany(
            "INSERT INTO outbound (id, instance_id, to_number, type, status, attempts,"
            " next_attempt_at, error_code, error_title, created_at, updated_at)"
            " VALUES (?, 1, ?, 'text', ?, ?, 0, ?, ?, 100.0, ?)",
            [("waiting", U, "queued", 0, None, None, 100.0),
             ("retrying", U, "queued", 1, 131000, "Something went wrong", 110.0),
             ("failed", U, "failed", 2, 131026, "Message undeliverable", 120.0),
             ("read", U, "read", 1, None, None, 130.0)])
    store = await SqliteStore.open(str(path))
    try:
        got = {m: [(e.at, e.status, e.error_code) for e in await store.status_history(m)]
               for m in ("waiting", "retrying", "failed", "read")}
    finally:
        await store.close()
    assert got == {"waiting": [(100.0, "queued", None)],
                   "retrying": [(100.0, "queued", None), (110.0, "retry", 131000)],
                   "failed": [(100.0, "queued", None), (120.0, "failed", 131026)],
                   "read": [(100.0, "queued", None), (130.0, "read", None)]}


async def test_a_retried_send_shows_why_it_waited(make_client: Callable[..., Awaitable[TestClient]],
                                                  graph_state: GraphState) -> None:
    """Meta refuses the first attempt (rate limit): the history has that retry with
    Meta's code and title, then the send, then Meta's status at Meta's time."""
    client = await make_client(DEFAULT)
    assert (await post_signed(client, meta_text("Hola", sender="34600000001"))).status == 200
    await wait_for(lambda: len(graph_state.messages) == 1)  # the confirmation
    graph_state.fail_next(130429, "Rate limit hit")
    resp = await send(client, "single", "text", {"number": U, "message": "x"}, instance=2)
    assert resp.status == 200, await resp.text()
    msg_id = (await resp.json())["id"]

    async def shown() -> dict[str, Any]:
        resp = await client.get(f"/v3/whatsapp/messages/{msg_id}", headers=DEFAULT_API)
        assert resp.status == 200
        return await resp.json()
    await wait_for(lambda: _status_is(shown(), "sent"))
    row = await client.app[store_key].get_outbound(msg_id)
    assert row is not None and row.provider_message_id is not None
    wamid = row.provider_message_id
    delivered_at = 1_767_225_600  # 2026-01-01T00:00:00Z, Meta's own timestamp
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{
        "field": "messages", "value": {"metadata": {"phone_number_id": PNID}, "statuses": [
            {"id": wamid, "status": "delivered", "timestamp": str(delivered_at),
             "recipient_id": "34600000001"}]}}]}]}
    assert (await post_signed(client, payload)).status == 200
    history = (await shown())["history"]
    assert [(e["status"], e["error"]) for e in history] == [
        ("queued", None), ("retry", {"code": 130429, "title": "Rate limit hit"}),
        ("sent", None), ("delivered", None)]
    assert history[-1]["at"] == "2026-01-01T00:00:00.000Z"
    await login(client)
    page = await (await client.get(f"/ui/messages/{msg_id}")).text()
    assert history_rows(page) == [("queued", ""), ("retry", "130429 Rate limit hit"),
                                  ("sent", ""), ("delivered", "")]
