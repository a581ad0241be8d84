"""Registration by greeting, end to end over HTTP through the sandbox."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from babel.messages.pofile import read_po

from tests.conftest import ADMIN, ROOT, outbox, say

REGISTERED = ("You are registered. You can now receive messages from this number. "
              "To stop, reply {stop}.")
ALREADY = "You are already registered. To stop receiving messages, reply {stop}."
OPTED_OUT = ("You have unsubscribed and will not receive any more messages. "
             "To register again, say {greeting}.")
HELP = ("This number sends you messages from services you have signed up for. "
        "Say {greeting} to register, or reply {stop} to stop receiving messages.")
HINT = ("You are not registered yet. Say {greeting} to register and receive messages "
        "from this number.")


def translation(locale: str, msgid: str) -> str:
    with Path(ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh)
    message = catalog.get(msgid)
    assert message is not None and message.string, f"{locale} misses {msgid!r}"
    return message.string


def words(locale: str) -> dict[str, list[str]]:
    import tomllib

    return tomllib.loads((ROOT / "locales" / locale / "keywords.toml").read_text("utf-8"))


def expected(locale: str, msgid: str) -> str:
    kw = words(locale)
    return translation(locale, msgid).format(stop=kw["stop"][0], greeting=kw["greetings"][0])


async def registration(client: TestClient, number: str) -> list[dict]:
    resp = await client.get(f"/admin/registrations/{number}", headers=ADMIN)
    if resp.status == 404:
        return []
    assert resp.status == 200
    return (await resp.json())["registrations"]


US = "+14155550100"
CN = "+8613800138000"
TW = "+886912345678"
HK = "+85291234567"
MO = "+85366123456"
ES = "+34600000001"
DE = "+4915112345678"
NL = "+31612345678"
BE = "+32470123456"
MY = "+60123456789"
ID = "+6281234567890"
BR = "+5511912345678"
PT = "+351912345678"
IT = "+393331234567"
GE = "+995555123456"  # Georgia: no Georgian locale shipped

SEED = [
    ("Hi", ES, "en"),
    ("嗨", CN, "zh_Hans"),
    ("嗨", US, "zh_Hans"),
    ("嗨", TW, "zh_Hant"),
    ("你好", CN, "zh_Hans"),
    ("你好", HK, "zh_Hant"),
    ("你好", MO, "zh_Hant"),
    ("你好", TW, "zh_Hant"),
    ("安安", CN, "zh_Hant"),
    ("こんにちは", US, "ja"),
    ("ハイ", US, "ja"),
    ("ﾊｲ", US, "ja"),
    ("Ching", IT, "it"),
    ("Ching", TW, "zh_Hant"),
    ("Ching", US, "en"),
    ("Ching", GE, "en"),
    ("Ciao", US, "it"),
    ("Hai", ID, "id"),
    ("Hai", MY, "ms"),
    ("Hai", US, "id"),
    ("Hallo", DE, "de"),
    ("Hallo", US, "de"),
    ("Hallo", NL, "nl"),
    ("Hallo", BE, "nl"),
    ("Hola", US, "es"),
    ("Hoi", DE, "nl"),
    ("Oi", BR, "pt_BR"),
    ("Oi", PT, "pt_PT"),
    ("Oi", US, "pt_PT"),
    ("Salut", US, "fr"),
    ("Здравствуй", US, "ru"),
    ("Привіт", US, "uk"),
    ("नमस्ते", US, "hi"),
    ("היי", US, "he"),
    ("مرحبا", US, "ar"),
    ("ﻣﺮﺣﺒﺎ", US, "ar"),
    ("مرحـــبا", US, "ar"),
    ("Hiii", US, "en"),
    ("Holaaa!!", US, "es"),
    ("¡HOLA! 👋", US, "es"),
    ("Ｈｉ", US, "en"),
]


@pytest.mark.parametrize(("text", "number", "locale"), SEED)
async def test_seed_greeting_registers_in_its_locale(client: TestClient, text: str, number: str,
                                                     locale: str) -> None:
    await say(client, text, sender=number)
    regs = await registration(client, number)
    assert [(r["instance"], r["number"], r["locale"], r["status"]) for r in regs] == [
        (1, number, locale, "active")]
    sent = await outbox(client, to=number)
    assert [m["text"] for m in sent] == [expected(locale, REGISTERED)]
    assert sent[0]["status"] == "sent"


@pytest.mark.parametrize("text", ["Hi, what's the price?", "Hill", "Holanda", "high",
                                  "Hi there", "Hola amigo", "Ciao bella", "Oil", "H i"])
async def test_not_a_greeting(client: TestClient, text: str) -> None:
    await say(client, text, sender=US)
    regs = await registration(client, US)
    assert regs == []
    sent = await outbox(client, to=US)
    assert [m["text"] for m in sent] == [expected("en", HINT)]  # the hint, not a confirmation


async def test_hint_at_most_once_an_hour(client: TestClient) -> None:
    await say(client, "what is this?", sender=ES)
    await say(client, "anyone?", sender=ES)
    await say(client, "anyone", sender=ES)
    sent = await outbox(client, to=ES)
    assert [m["text"] for m in sent] == [expected("es", HINT)]


async def test_keyword_names_the_subscriber(make_client) -> None:
    client = await make_client(SUBSCRIBER)
    await say(client, "Hola ACME", sender=ES)
    regs = await registration(client, ES)
    assert regs[0]["keyword_subscriber"] == "acme"
    assert regs[0]["locale"] == "es"
    await say(client, "Hola NOBODY", sender=DE)
    assert await registration(client, DE) == []


async def test_already_registered_and_locale_follows_latest_greeting(make_client) -> None:
    client = await make_client()
    await say(client, "Hola", sender=ES)
    await say(client, "Hallo", sender=ES)
    regs = await registration(client, ES)
    assert regs[0]["locale"] == "de" and regs[0]["status"] == "active"
    # the "already registered" reply is rate-limited: the confirmation was just sent
    sent = await outbox(client, to=ES)
    assert [m["text"] for m in sent] == [expected("es", REGISTERED)]


async def test_stop_then_hi_again(client: TestClient) -> None:
    await say(client, "Hola", sender=ES)
    await say(client, "ALTO", sender=ES)
    regs = await registration(client, ES)
    assert regs[0]["status"] == "opted_out"
    await say(client, "Hola", sender=ES)
    regs = await registration(client, ES)
    assert regs[0]["status"] == "active"
    sent = [m["text"] for m in await outbox(client, to=ES)]
    assert sent == [expected("es", REGISTERED), expected("es", OPTED_OUT),
                    expected("es", REGISTERED)]


@pytest.mark.parametrize(("word", "locale"), [("STOP", "es"), ("stop", "es"), ("Unsubscribe", "es"),
                                              ("ALTO", "es")])
async def test_stop_family_answers_in_users_language(client: TestClient, word: str,
                                                     locale: str) -> None:
    await say(client, "Hola", sender=ES)
    await say(client, word, sender=ES)
    regs = await registration(client, ES)
    assert regs[0]["status"] == "opted_out"
    sent = [m["text"] for m in await outbox(client, to=ES)]
    assert sent[-1] == expected(locale, OPTED_OUT)


# A localized stop word counts in its language's countries (and for users
# registered in it: tests/test_keyword_rules.py).
FR, RU = "+33612345678", "+79161234567"


@pytest.mark.parametrize(("word", "locale", "number"), [
    ("STOPP", "de", DE), ("ARRÊT", "fr", FR), ("СТОП", "ru", RU)])
async def test_localized_stop_words(client: TestClient, word: str, locale: str,
                                    number: str) -> None:
    await say(client, "Hi", sender=number)
    await say(client, word, sender=number)
    regs = await registration(client, number)
    assert regs[0]["status"] == "opted_out"
    sent = [m["text"] for m in await outbox(client, to=number)]
    assert sent[-1] == expected(locale, OPTED_OUT)


async def test_help(client: TestClient) -> None:
    await say(client, "AYUDA", sender=US)
    sent = [m["text"] for m in await outbox(client, to=US)]
    assert sent == [expected("es", HELP)]


async def test_auto_reply_rate_limit_spares_state_changes(client: TestClient) -> None:
    await say(client, "HELP", sender=ES)  # help reply (an auto-reply)
    await say(client, "Hola", sender=ES)  # confirmation: a state change, always sent
    await say(client, "Hola", sender=ES)  # already registered: rate-limited
    await say(client, "HELP", sender=ES)  # rate-limited
    sent = [m["text"] for m in await outbox(client, to=ES)]
    assert sent == [expected("es", HELP), expected("es", REGISTERED)]


async def test_a_suppressed_auto_reply_says_why_at_info(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    await say(client, "HELP", sender=ES)
    with caplog.at_level(logging.INFO, logger="wagate"):
        await say(client, "AYUDA", sender=ES)
    [line] = [r.getMessage() for r in caplog.records if "suppressed" in r.getMessage()]
    assert re.fullmatch(rf"auto-reply to \{ES} suppressed: last one \d+ s ago, "
                        r"interval 60 s", line), line
    assert [r.levelno for r in caplog.records if "suppressed" in r.getMessage()] == [
        logging.INFO]


async def test_group_registration(client: TestClient) -> None:
    group = {"id": "120363000000000001@g.us", "name": "Family"}
    await say(client, "Hola", sender=ES, group=group)
    sent = await outbox(client)
    assert sent[-1]["group"] == {"id": group["id"], "name": "Family"}
    assert sent[-1]["to"] is None
    assert sent[-1]["text"] == translation(
        "es", 'This group is now registered as "{name}" and can receive messages from this '
        "number.").format(name="Family")
    # saying Hi in a group does not register the person
    assert await registration(client, ES) == []


async def test_redelivered_message_changes_nothing(client: TestClient) -> None:
    first = await say(client, "Hola", sender=ES, id="dup-1")
    again = await say(client, "Hola", sender=ES, id="dup-1")
    assert first["duplicate"] is False and again["duplicate"] is True
    assert len(await outbox(client, to=ES)) == 1


SUBSCRIBER = """
[[subscribers]]
id = "acme"
client_id = "dev@acme.example"
secret = "acme-secret"
plan = "enterprise"
instances = [1]
keyword = "ACME"
"""


async def test_concurrent_greetings_from_one_user_confirm_once(client: TestClient) -> None:
    import asyncio

    await asyncio.gather(*(say(client, "Hola", sender=ES) for _ in range(5)))
    await asyncio.gather(*(say(client, "what?", sender=DE) for _ in range(5)))
    assert [m["text"] for m in await outbox(client, to=ES)] == [expected("es", REGISTERED)]
    assert [m["text"] for m in await outbox(client, to=DE)] == [expected("de", HINT)]


async def test_a_greeting_whose_caller_went_away_still_confirms_once(client: TestClient) -> None:
    """A message whose request is cancelled while its write waits keeps its chat
    until the write is in: the user's next greeting sees them registered."""
    import asyncio
    import sqlite3
    import time

    from bot.events import InboundMessage
    from bot.web.keys import pipeline_key, store_key

    pipeline = client.app[pipeline_key]

    def hola(message_id: str) -> InboundMessage:
        return InboundMessage(provider="sandbox", provider_message_id=message_id, instance_id=1,
                              sender=ES, text="Hola", timestamp=time.time())

    # Another process holds the database's write lock, so the first greeting's
    # write waits in the store's queue when its caller goes away.
    other = sqlite3.connect(client.app[store_key].path, isolation_level=None,
                            check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.ensure_future(pipeline.handle(hola("gone-1")))
        await asyncio.sleep(0.1)
        first.cancel()
        second = asyncio.ensure_future(pipeline.handle(hola("next-2")))
        await asyncio.sleep(0.1)
        other.execute("ROLLBACK")
        await asyncio.gather(first, return_exceptions=True)
        assert await second is True
    finally:
        other.close()
    assert [m["text"] for m in await outbox(client, to=ES)] == [expected("es", REGISTERED)]
