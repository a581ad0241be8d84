"""Keywords that mean what the user meant (docs/registration.md).

A stop word counts for everyone only when it is a word for everyone (STOP);
else for a user of its language: registered in it, or writing from a number
of a country that speaks it. A greeting a registered user's language has keeps
their language; a `local` greeting (an ordinary word elsewhere) counts only
for a user of its language. Each case below names the number's country and
the user's language before the message; then every keyword of every list is
said by a user of every other language, and nothing may happen that the rule
does not mean.
"""

from __future__ import annotations

import shutil
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.config import Config
from bot.events import InboundMessage
from bot.locales import COMMON, LocaleBook, LocaleError, load_locales, normalize, region_of
from bot.store.models import InboundContext, Registration
from handlers.dispatcher import build_dispatcher
from tests.conftest import ROOT, outbox, say
from tests.test_registration import (
    HELP,
    HINT,
    OPTED_OUT,
    REGISTERED,
    expected,
    registration,
    translation,
)

FSI, PDI = "\u2068", "\u2069"

# A number of each locale's home country (the first language CLDR gives it,
# or one of its official ones).
HOME = {
    "en": "+14155550100", "zh_Hans": "+8613800138000", "zh_Hant": "+886912345678",
    "ja": "+819012345678", "ko": "+821012345678", "it": "+393331234567",
    "id": "+6281234567890", "ms": "+60123456789", "de": "+4915112345678",
    "nl": "+31612345678", "es": "+34600000001", "pt_BR": "+5511912345678",
    "pt_PT": "+351912345678", "fr": "+33612345678", "ru": "+79161234567",
    "uk": "+380501234567", "tr": "+905321234567", "hi": "+919812345678",
    "he": "+972501234567", "ar": "+201001234567", "ur": "+923001234567",
    "fa": "+989121234567", "bn": "+8801712345678", "ta": "+94771234567",
    "vi": "+84912345678", "th": "+66812345678", "pl": "+48512345678",
    "ro": "+40721234567", "sw": "+254712345678", "fil": "+639171234567",
    "el": "+306912345678", "zu": "+27821234567",
}
US, IN, PK, BD, IR, VN, TH, GR = (HOME[k] for k in ("en", "hi", "ur", "bn", "fa", "vi", "th",
                                                     "el"))
KE, PH, IT, NL, TR, ES, MY, FR, RO, RU = (HOME[k] for k in (
    "sw", "fil", "it", "nl", "tr", "es", "ms", "fr", "ro", "ru"))
AF, TZ, CL = "+93701234567", "+255712345678", "+56912345678"


@pytest.fixture(scope="module")
def book() -> LocaleBook:
    return load_locales(ROOT / "locales", "en")


def own_greeting(book: LocaleBook, locale: str) -> str:
    """A greeting of `locale` alone: saying it registers in `locale` from any country."""
    return next(g for g in book[locale].greetings
                if book.greetings.lookup(normalize(g)) == [locale])


# ----------------------------------------------------------------- the cases

KEPT = ("active", None)  # registered as before: the message was not a keyword for them

# (what, text, number, language before (None: not registered), after, reply)
# `after`: (status, locale) of the registration, None when there is none;
# `reply`: (locale, message) of the one reply, None for no reply.
CASES = [
    ("acha is Hindi's OK", "acha", IN, "hi", KEPT, None),
    ("achha, by letter repetition", "achha", IN, "hi", KEPT, None),
    ("accha, Urdu", "accha", PK, "ur", KEPT, None),
    ("acha, a stranger", "acha", IN, None, None, ("hi", HINT)),
    ("acha is no longer a Swahili stop word", "acha", KE, "sw", KEPT, None),
    ("dung is đúng, 'right'", "dung", VN, "vi", KEPT, None),
    ("DỪNG stops", "DỪNG", VN, "vi", ("opted_out", "vi"), ("vi", OPTED_OUT)),
    ("basta is Tagalog", "basta", PH, "fil", KEPT, None),
    ("basta, a Filipino stranger", "Basta", PH, None, None, ("en", HINT)),
    ("BASTA stops an Italian", "BASTA", IT, "it", ("opted_out", "it"), ("it", OPTED_OUT)),
    ("duur is Dutch, 'expensive'", "duur", NL, "nl", KEPT, None),
    ("DUR stops a Turk", "DUR", TR, "tr", ("opted_out", "tr"), ("tr", OPTED_OUT)),
    ("Chao is a Chilean goodbye", "Chao", CL, None, None, ("es", HINT)),
    ("Chaooo, elongated, all the same", "Chaooo!", CL, None, None, ("es", HINT)),
    ("Chao keeps a Spanish speaker", "Chao", ES, "es", KEPT, None),
    ("Chao greets in Vietnam", "Chao", VN, None, ("active", "vi"), ("vi", REGISTERED)),
    ("Chao from a Vietnamese speaker abroad", "Chao", US, "vi", KEPT, None),
    ("HUỶ, tone mark on y", "HUỶ", VN, "vi", ("opted_out", "vi"), ("vi", OPTED_OUT)),
    ("huỷ, lower case", "huỷ", VN, "vi", ("opted_out", "vi"), ("vi", OPTED_OUT)),
    ("HỦY, as replies say", "HỦY", VN, "vi", ("opted_out", "vi"), ("vi", OPTED_OUT)),
    ("Salam, Pakistan", "Salam", PK, None, ("active", "ur"), ("ur", REGISTERED)),
    ("Salaam, Pakistan", "Salaam", PK, None, ("active", "ur"), ("ur", REGISTERED)),
    ("Salam, Iran", "Salam", IR, None, ("active", "fa"), ("fa", REGISTERED)),
    ("Salaam, Afghanistan", "Salaam", AF, None, ("active", "fa"), ("fa", REGISTERED)),
    ("Salam, Bangladesh", "Salam", BD, None, ("active", "bn"), ("bn", REGISTERED)),
    ("Salam keeps a Bengali speaker in Pakistan", "Salam", PK, "bn", KEPT, None),
    ("Salam, a country none of them is spoken in", "Salam", US, None, None, ("en", HINT)),
    ("Assalamualaikum, Bangladesh", "Assalamualaikum", BD, None, ("active", "bn"),
     ("bn", REGISTERED)),
    ("Assalamualaikum, Malaysia", "Assalamualaikum", MY, None, ("active", "ms"),
     ("ms", REGISTERED)),
    ("وقت به خیر, spaced", "وقت به خیر", IR, None, ("active", "fa"), ("fa", REGISTERED)),
    ("روز به خیر, spaced", "روز به خیر", IR, None, ("active", "fa"), ("fa", REGISTERED)),
    ("عصر به خیر, spaced", "عصر به خیر", AF, None, ("active", "fa"), ("fa", REGISTERED)),
    ("Sawadee", "Sawadee", TH, None, ("active", "th"), ("th", REGISTERED)),
    ("Sawaddee", "Sawaddee", TH, None, ("active", "th"), ("th", REGISTERED)),
    ("Sawasdee krap", "Sawasdee krap", TH, None, ("active", "th"), ("th", REGISTERED)),
    ("Sawadee ka", "Sawadee ka", TH, None, ("active", "th"), ("th", REGISTERED)),
    ("Sawadee krub", "Sawadee krub", US, None, ("active", "th"), ("th", REGISTERED)),
    ("Καλημέρα σας", "Καλημέρα σας", GR, None, ("active", "el"), ("el", REGISTERED)),
    ("Καλησπέρα σας", "Καλησπέρα σας", GR, None, ("active", "el"), ("el", REGISTERED)),
    ("Χαίρετε", "Χαίρετε", GR, None, ("active", "el"), ("el", REGISTERED)),
    ("Yassou", "Yassou", GR, None, ("active", "el"), ("el", REGISTERED)),
    ("Habari gani", "Habari gani", KE, None, ("active", "sw"), ("sw", REGISTERED)),
    ("Hamjambo", "Hamjambo", TZ, None, ("active", "sw"), ("sw", REGISTERED)),
    ("Magandang tanghali", "Magandang tanghali", PH, None, ("active", "fil"),
     ("fil", REGISTERED)),
    ("Magandang tanghali po", "Magandang tanghali po", PH, None, ("active", "fil"),
     ("fil", REGISTERED)),
    ("Namaskar, Bangladesh", "Namaskar", BD, None, ("active", "bn"), ("bn", REGISTERED)),
    ("Namaskar, India", "Namaskar", IN, None, ("active", "hi"), ("hi", REGISTERED)),
    ("رکیں alone is 'wait'", "رکیں", PK, "ur", KEPT, None),
    ("روکیں stops", "روکیں", PK, "ur", ("opted_out", "ur"), ("ur", OPTED_OUT)),
    ("Salut keeps a French speaker in Romania", "Salut", RO, "fr", KEPT, None),
    ("Salut, a Romanian stranger", "Salut", RO, None, ("active", "ro"), ("ro", REGISTERED)),
    ("Bonjour, as French replies now say", "Bonjour", RO, None, ("active", "fr"),
     ("fr", REGISTERED)),
    ("ARRÊT from an English speaker in the US", "ARRÊT", US, "en", KEPT, None),
    ("ARRÊT in France stops anyone", "ARRÊT", FR, "en", ("opted_out", "en"),
     ("fr", OPTED_OUT)),
    ("СТОП from an English speaker in the US", "СТОП", US, "en", KEPT, None),
    ("STOP is everyone's", "STOP", VN, "vi", ("opted_out", "vi"), ("vi", OPTED_OUT)),
    ("Ching keeps a registered user's language", "Ching", PH, "fil", KEPT, None),
]


@pytest.mark.parametrize(("what", "text", "number", "before", "after", "reply"), CASES,
                         ids=[c[0] for c in CASES])
async def test_case(client: TestClient, book: LocaleBook, what: str, text: str, number: str,
                    before: str | None, after: tuple[str, str | None] | None,
                    reply: tuple[str, str] | None) -> None:
    if before is not None:
        await say(client, own_greeting(book, before), sender=number)
        assert [r["locale"] for r in await registration(client, number)] == [before]
    seen = len(await outbox(client, to=number))
    await say(client, text, sender=number)
    regs = [(r["status"], r["locale"]) for r in await registration(client, number)]
    if after is None:
        assert regs == []
    else:
        assert regs == [(after[0], after[1] or before)]
    sent = [m["text"] for m in (await outbox(client, to=number))[seen:]]
    assert sent == ([expected(*reply)] if reply else [])


# ----------------------------------------------------------------- wording


async def test_replies_name_the_greeting_that_keeps_the_language(client: TestClient) -> None:
    """French replies say Bonjour (Salut is Romanian too); Russian ones the formal
    Здравствуйте; the Polish hint speaks of the user's number, not the gateway's."""
    await say(client, "AIDE", sender=RO)
    await say(client, "ПОМОЩЬ", sender=RU)
    await say(client, "what?", sender=HOME["pl"])
    french = (await outbox(client, to=RO))[0]["text"]
    assert french == expected("fr", HELP) and "«\xa0Bonjour\xa0»" in french
    russian = (await outbox(client, to=RU))[0]["text"]
    assert russian == expected("ru", HELP) and "«Здравствуйте»" in russian
    hint = (await outbox(client, to=HOME["pl"]))[0]["text"]
    assert hint == expected("pl", HINT) and hint.startswith("Twój numer nie jest")


@pytest.mark.parametrize(("greeting", "number", "locale"), [
    ("مرحبا", HOME["ar"], "ar"), ("שלום", HOME["he"], "he")])
async def test_right_to_left_group_names_are_isolated(client: TestClient, greeting: str,
                                                      number: str, locale: str) -> None:
    group = {"id": f"1203630000000001{locale}@g.us", "name": "Family ❤️"}
    await say(client, greeting, sender=number, group=group)
    await say(client, greeting, sender=number, group=group)
    sent = [m["text"] for m in await outbox(client)]
    now = translation(locale, 'This group is now registered as "{name}" and can receive '
                              "messages from this number.")
    assert sent[-1] == now.format(name="Family ❤️")
    assert f"{FSI}Family ❤️{PDI}" in sent[-1]


# ----------------------------------------------------------------- every word, every user

# Stop words that opt out a user of another language on purpose: the language
# of the word is one of the country's (below, of the home country of the user's).
ALLOWED_OPT_OUTS: dict[tuple[str, str], str] = {
    ("отписаться", "uk"): "Russian is a de facto official language of Ukraine",
    ("إيقاف", "he"): "Arabic is an official language of Israel",
    ("ايقاف", "he"): "Arabic is an official language of Israel (without hamza)",
    ("توقف", "he"): "Arabic is an official language of Israel",
}


def test_home_numbers_are_in_their_country(book: LocaleBook) -> None:
    # CLDR has Zulu official in a province (KwaZulu-Natal), not nationally.
    regional = {"zu"}
    for locale, number in HOME.items():
        assert (locale in book.country_locales(region_of(number))) != (locale in regional), \
            (locale, number)


async def test_no_word_of_another_language_opts_out_or_switches(
        book: LocaleBook, make_config: Callable[..., Config]) -> None:
    """Every stop word and greeting of every list (common.toml's too), said by a
    user of every other language, registered in it or not, from its home country:
    no opt-out by a word that is not theirs, no switch away from a language that
    has the greeting, no registration by a local greeting of a language not theirs."""
    config, dispatcher = make_config(), build_dispatcher()
    now = time.time()

    async def outcome(text: str, number: str, before: str | None) -> tuple[str, str] | None:
        reg = None if before is None else Registration(
            instance_id=1, number=number, locale=before, status="active",
            keyword_subscriber=None, registered_at=now - 600, updated_at=now - 600)
        state = InboundContext(registration=reg, group=None, last_auto_reply_at=None,
                               last_hint_at=None)
        msg = InboundMessage(provider="sandbox", provider_message_id="m", instance_id=1,
                             sender=number, text=text, timestamp=now)
        effects = await dispatcher.dispatch(dispatcher.build_context(
            config=config, locales=book, msg=msg, state=state, now=now))
        write = effects.registration
        return (write.status, write.locale) if write is not None else None

    common = tomllib.loads((ROOT / "locales" / "common.toml").read_text("utf-8"))
    universal = {normalize(w) for w in common["stop"]}
    lists = {name: (data.stop_words, data.greetings) for name, data in book.locales.items()}
    lists[COMMON] = (common["stop"], common["greetings"])
    problems: list[str] = []
    checked = 0
    for user, number in HOME.items():
        own_stops = {normalize(w) for w in book[user].stop_words}
        own_greetings = {normalize(w) for w in book[user].greetings}
        country = region_of(number)
        for lang, (stops, greetings) in lists.items():
            if lang == user:
                continue
            for word in stops:
                norm = normalize(word)
                if norm in universal or norm in own_stops:
                    continue
                for before in (user, None):
                    checked += 1
                    got = await outcome(word, number, before)
                    if got is not None and got[0] == "opted_out" and \
                            (norm, user) not in ALLOWED_OPT_OUTS:
                        problems.append(f"stop word {word!r} ({lang}) opts out a "
                                        f"{'registered' if before else 'new'} {user} user "
                                        f"in {country}")
            for word in greetings:
                norm = normalize(word)
                for before in (user, None):
                    checked += 1
                    got = await outcome(word, number, before)
                    kept = norm in own_greetings or lang == COMMON
                    if kept and before and got != ("active", user):
                        problems.append(f"greeting {word!r} ({lang}, {user}'s too) moves a "
                                        f"registered {user} user in {country} to {got}")
                    elif got is not None and got[1] != user and \
                            norm in book[got[1]].local:
                        problems.append(f"local greeting {word!r} ({lang}) registers a "
                                        f"{'registered' if before else 'new'} {user} user "
                                        f"in {country} in {got[1]}")
    assert checked > 20000
    assert not problems, "\n".join(problems)


def test_a_local_word_must_be_a_greeting(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    keywords = tmp_path / "locales" / "vi" / "keywords.toml"
    keywords.write_text(keywords.read_text("utf-8").replace('local = ["Chao"]',
                                                           'local = ["Chao", "DỪNG"]'), "utf-8")
    with pytest.raises(LocaleError, match="local word 'dừng' is not a greeting"):
        load_locales(tmp_path / "locales", "en")


def test_a_book_is_compiled_once_per_state_of_its_files(tmp_path: Path) -> None:
    """Every app of a process (and of a test run) shares the compiled book of
    unchanged files (compiling the catalogs is most of an app's start); a
    changed, added or removed file is read again, as a reload needs."""
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    first = load_locales(tmp_path / "locales", "en")
    assert load_locales(tmp_path / "locales", "en") is first
    keywords = tmp_path / "locales" / "es" / "keywords.toml"
    keywords.write_text(keywords.read_text("utf-8").replace('greetings = [',
                                                           'greetings = ["Holita", '), "utf-8")
    edited = load_locales(tmp_path / "locales", "en")
    assert edited is not first and edited.greetings.lookup("holita") == ["es"]
    assert first.greetings.lookup("holita") == []
    shutil.rmtree(tmp_path / "locales" / "vi")
    assert "vi" not in load_locales(tmp_path / "locales", "en").locales
