"""What the CLI, the API and the pages say is what they do (issue 23's small
untruths): the order listings print in, which method a route takes, the
articles of /docs, how to start an unreachable service, the overview's queue."""

from __future__ import annotations

import argparse

from aiohttp.test_utils import TestClient

from bot.cli.admin import message_lines
from bot.cli.client import ServiceUnreachable
from bot.cli.parser import build_parser
from tests.conftest import ADMIN, say, wait_sent
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
