"""What the CLI, the API and the pages say is what they do (issue 23's small
untruths): the order listings print in, which method a route takes, the
articles of /docs, how to start an unreachable service, the overview's queue."""

from __future__ import annotations

import argparse
import logging
import sqlite3

import pytest
from aiohttp.test_utils import TestClient

from bot.cli.admin import message_lines
from bot.cli.client import ServiceUnreachable
from bot.cli.parser import build_parser
from bot.web.keys import store_key
from tests.conftest import ADMIN, ROOT, say, wait_sent
from tests.ui_helpers import login


def _subcommand_help(name: str) -> str:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    [choice] = [c for c in sub._choices_actions if c.dest == name]
    return str(choice.help)


async def test_listings_say_the_order_they_print_in(client: TestClient) -> None:
    for number in ("+34600000001", "+34600000002", "+34600000003"):
        await say(client, "Hola", sender=number)
    await wait_sent(client)
    outbox = (await (await client.get("/sandbox/outbox", headers=ADMIN)).json())["messages"]
    assert [m["to"] for m in outbox] == ["+34600000001", "+34600000002", "+34600000003"]
    log = (await (await client.get("/admin/messages", headers=ADMIN)).json())["messages"]
    assert [m["at"] for m in log] == sorted(m["at"] for m in log)
    doc = await (await client.get("/openapi.json")).json()
    for path in ("/sandbox/outbox", "/admin/messages"):
        assert "oldest first" in doc["paths"][path]["get"]["summary"], path
    for command in ("outbox", "messages"):
        assert "oldest first" in _subcommand_help(command), command


def test_wagate_messages_shows_each_text() -> None:
    lines = message_lines([
        {"at": "2026-12-06T10:00:00.000Z", "direction": "in", "instance": 1,
         "number": "+34600000001", "group_id": None, "type": "text", "status": None,
         "text": "Hola"},
        {"at": "2026-12-06T10:00:01.000Z", "direction": "out", "instance": 1,
         "number": "+34600000001", "group_id": None, "type": "image", "status": "sent",
         "text": None}])
    assert lines == ["2026-12-06T10:00:00.000Z  <- #1 +34600000001  text\n    Hola",
                     "2026-12-06T10:00:01.000Z  -> #1 +34600000001  image [sent]"]


async def test_a_wrong_method_says_which_to_use(client: TestClient) -> None:
    resp = await client.get("/v3/whatsapp/single/text/message/1")
    assert resp.status == 405 and resp.headers["Allow"] == "POST"
    body = await resp.json()
    assert body["error_message"] == ("GET is not allowed on /v3/whatsapp/single/text/message/1;"
                                     " use POST")


async def test_send_operations_read_right_in_docs(client: TestClient) -> None:
    doc = await (await client.get("/openapi.json")).json()
    summary = {path: item["post"]["summary"] for path, item in doc["paths"].items()
               if path.startswith("/v3/whatsapp/single/")}
    assert summary["/v3/whatsapp/single/image/message/{n}"] == "Send an image message to a number"
    assert summary["/v3/whatsapp/single/url/message/{n}"] == "Send a URL message to a number"


def test_an_unreachable_service_says_how_to_start_it() -> None:
    message = str(ServiceUnreachable("http://127.0.0.1:8080", ConnectionRefusedError(
        111, "Connection refused")))
    assert message.startswith("cannot reach wagate at http://127.0.0.1:8080: ")
    assert "wagate serve" in message


async def test_the_overview_says_none_due_rather_than_a_dash_ago(client: TestClient) -> None:
    assert (await login(client)).status == 303
    page = await (await client.get("/ui/live")).text()
    assert "— ago" not in page and "none due" in page


async def test_json_answers_are_utf8_as_the_readme_shows(client: TestClient) -> None:
    await say(client, "Hola 👍 ñ")
    await wait_sent(client)
    resp = await client.get("/admin/messages", headers=ADMIN)
    assert resp.content_type == "application/json" and resp.charset == "utf-8"
    raw = await resp.text()
    assert "Hola 👍 ñ" in raw and "\\ud83d" not in raw and "\\u00f1" not in raw
    # an error's message, built from what the client sent, reads the same way
    resp = await client.get("/admin/deliveries/dlv_año/retry", headers=ADMIN)
    assert resp.status == 405 and "/dlv_año/" in await resp.text()


def test_every_json_answer_has_the_one_encoder() -> None:
    """Only bot/web/operations.py calls aiohttp's json_response; the rest call its
    json_response, so no route answers in escaped ASCII."""
    callers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "bot").rglob("*.py")
                     if "web.json_response(" in p.read_text(encoding="utf-8"))
    assert callers == ["bot/web/operations.py"]


async def test_readyz_logs_a_change_once_and_a_start_without_warnings(
        client: TestClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A group starting answers 503 to a probe until its last process is up: an
    expected answer, said once at info, not a warning per probe."""
    store = client.app[store_key]

    async def broken_ping() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    caplog.set_level(logging.INFO, logger="wagate")
    monkeypatch.setattr(store, "ping", broken_ping)
    for _ in range(3):
        assert (await client.get("/readyz")).status == 503
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [s for s in said if s[0] == "WARNING"] == []
    assert said.count(("INFO", "not ready yet: store: OperationalError")) == 1
    monkeypatch.undo()
    assert (await client.get("/readyz")).status == 200
    monkeypatch.setattr(store, "ping", broken_ping)
    caplog.clear()
    for _ in range(2):
        assert (await client.get("/readyz")).status == 503
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "not ready: store: OperationalError")]
