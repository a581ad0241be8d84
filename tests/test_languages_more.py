"""The twelve languages added after the first twenty: ur, bn, ta, vi, th, fa, pl, ro, sw,
fil, el, zu. Greetings register end to end through the sandbox, from a number of the
language's country, with the confirmation in that language; near-misses stay hints;
shared words (سلام, Salut) go by the number's country; no older greeting changes."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.locales import LocaleBook, load_locales, normalize, region_of
from tests.conftest import ROOT, outbox, say
from tests.test_registration import (
    HELP,
    HINT,
    OPTED_OUT,
    REGISTERED,
    expected,
    registration,
    translation,
    words,
)

NEW = ("ur", "bn", "ta", "vi", "th", "fa", "pl", "ro", "sw", "fil", "el", "zu")
FSI, PDI = "\u2068", "\u2069"

PK = "+923001234567"
BD = "+8801712345678"
IN = "+919812345678"
LK = "+94771234567"
VN = "+84912345678"
TH = "+66812345678"
IR = "+989121234567"
AF = "+93701234567"
PL = "+48512345678"
RO = "+40721234567"
MD = "+37369123456"
KE = "+254712345678"
TZ = "+255712345678"
PH = "+639171234567"
GR = "+306912345678"
ZA = "+27821234567"
EG = "+201001234567"
FR = "+33612345678"
US = "+14155550100"

# The language's country for each new locale (the stop/help round trip below).
HOME = {"ur": PK, "bn": BD, "ta": LK, "vi": VN, "th": TH, "fa": IR, "pl": PL, "ro": RO,
        "sw": KE, "fil": PH, "el": GR, "zu": ZA}


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


GREETINGS = [
    ("السلام علیکم", PK, "ur"),
    ("سلام", PK, "ur"),
    ("Assalam o Alaikum", PK, "ur"),
    ("AoA", PK, "ur"),
    ("اسلام علیکم", PK, "ur"),
    ("নমস্কার", BD, "bn"),
    ("হ্যালো", BD, "bn"),
    ("আসসালামু আলাইকুম", BD, "bn"),
    ("வணக்கம்", IN, "ta"),
    ("வணக்கம்", LK, "ta"),
    ("Vanakkam", LK, "ta"),
    ("Xin chào", VN, "vi"),
    ("Chào", VN, "vi"),
    ("Chào bạn", VN, "vi"),
    ("Xin chao", VN, "vi"),
    ("Chao", VN, "vi"),
    ("Chao ban", VN, "vi"),
    (nfd("Xin chào"), VN, "vi"),  # decomposed tone marks
    (nfd("Chào bạn"), VN, "vi"),
    ("XIN CHÀO!", VN, "vi"),
    ("สวัสดี", TH, "th"),
    ("สวัสดีครับ", TH, "th"),
    ("สวัสดีค่ะ", TH, "th"),
    ("สวัสดีคะ", TH, "th"),
    ("สวัสดี ครับ", TH, "th"),
    ("สวัสดีครับบบ 🙏", TH, "th"),
    ("سلام", IR, "fa"),
    ("درود", IR, "fa"),
    ("Cześć", PL, "pl"),
    ("Dzień dobry", PL, "pl"),
    ("Hej", PL, "pl"),
    ("Czesc", PL, "pl"),
    ("Dzien dobry", PL, "pl"),
    ("CZEŚĆ!", PL, "pl"),
    ("Bună", RO, "ro"),
    ("Bună ziua", RO, "ro"),
    ("Salut", RO, "ro"),
    ("Buna", RO, "ro"),
    ("Buna ziua", RO, "ro"),
    ("Jambo", KE, "sw"),
    ("Habari", KE, "sw"),
    ("Hujambo", TZ, "sw"),
    ("Mambo", TZ, "sw"),
    ("Kumusta", PH, "fil"),
    ("Kamusta", PH, "fil"),
    ("Musta", PH, "fil"),
    ("Kumusta po", PH, "fil"),
    ("Kamusta po", PH, "fil"),
    ("Musta po!", PH, "fil"),
    ("Γεια", GR, "el"),
    ("Γειά σου", GR, "el"),
    ("Γεια σας", GR, "el"),
    ("Καλημέρα", GR, "el"),
    ("ΓΕΙΑ ΣΑΣ", GR, "el"),
    ("Geia", GR, "el"),
    ("Kalimera", GR, "el"),
    ("Sawubona", ZA, "zu"),
    ("Sanibonani", ZA, "zu"),
]

# Greetings more than one language has: the number's country settles them.
SHARED = [
    ("سلام", IR, "fa"),
    ("سلام", AF, "fa"),
    ("سلام", PK, "ur"),
    ("سلام", EG, "ar"),
    ("سلام", US, "ar"),
    ("السلام عليكم", PK, "ur"),  # typed with Arabic letters
    ("السلام عليكم", EG, "ar"),
    ("Salut", RO, "ro"),
    ("Salut", MD, "ro"),
    ("Salut", FR, "fr"),
    ("Salut", US, "fr"),
    ("Ching", VN, "vi"),  # a word of no language: the country's
    ("Ching", PK, "ur"),
    ("Ching", PH, "en"),  # CLDR ranks English first in the Philippines
]


@pytest.mark.parametrize(("text", "number", "locale"), GREETINGS + SHARED)
async def test_greeting_registers_in_its_language(client: TestClient, text: str, number: str,
                                                  locale: str) -> None:
    await say(client, text, sender=number)
    regs = await registration(client, number)
    assert [(r["number"], r["locale"], r["status"]) for r in regs] == [
        (number, locale, "active")]
    sent = await outbox(client, to=number)
    assert [m["text"] for m in sent] == [expected(locale, REGISTERED)]


# A sentence that starts with a greeting is not a greeting: a hint in the
# language of the number's country.
NEAR_MISSES = [
    ("السلام علیکم، قیمت کیا ہے؟", PK, "ur"),
    ("নমস্কার, দাম কত?", BD, "bn"),
    ("வணக்கம், விலை என்ன?", LK, "ta"),
    ("Xin chào, giá bao nhiêu?", VN, "vi"),
    ("สวัสดีครับ ราคาเท่าไหร่", TH, "th"),
    ("درود، قیمت چند است؟", IR, "fa"),
    ("Cześć, ile to kosztuje?", PL, "pl"),
    ("Bună ziua, cât costă?", RO, "ro"),
    ("Habari, bei gani?", KE, "sw"),
    ("Kumusta po, magkano po ito?", PH, "en"),
    ("Γεια σας, πόσο κοστίζει;", GR, "el"),
    ("Sawubona, kubiza malini?", ZA, "en"),
    ("Chàoo bạn ơi", VN, "vi"),
    ("Bun", RO, "ro"),  # shorter than Bună
]


@pytest.mark.parametrize(("text", "number", "hint_locale"), NEAR_MISSES)
async def test_near_miss_is_not_a_greeting(client: TestClient, text: str, number: str,
                                           hint_locale: str) -> None:
    await say(client, text, sender=number)
    assert await registration(client, number) == []
    sent = await outbox(client, to=number)
    assert [m["text"] for m in sent] == [expected(hint_locale, HINT)]


def own_stop_word(locale: str) -> str:
    """The first stop word of the language itself (STOP answers in the registered one)."""
    common = {normalize(w) for w in ("STOP", "STOPALL", "UNSUBSCRIBE")}
    return next(w for w in words(locale)["stop"] if normalize(w) not in common)


@pytest.mark.parametrize("locale", NEW)
async def test_help_register_stop_round_trip(client: TestClient, locale: str) -> None:
    """The words a reply shows work: help names the greeting, the greeting registers,
    the language's own stop word opts out, each answer in the language."""
    number, kw = HOME[locale], words(locale)
    await say(client, kw["help"][0], sender=number)
    await say(client, kw["greetings"][0], sender=number)
    await say(client, own_stop_word(locale), sender=number)
    regs = await registration(client, number)
    assert [(r["locale"], r["status"]) for r in regs] == [(locale, "opted_out")]
    sent = [m["text"] for m in await outbox(client, to=number)]
    assert sent == [expected(locale, HELP), expected(locale, REGISTERED),
                    expected(locale, OPTED_OUT)]


async def test_right_to_left_group_name_is_isolated(client: TestClient) -> None:
    group = {"id": "120363000000000092@g.us", "name": "ACME Team 2"}
    await say(client, "السلام علیکم", sender=PK, group=group)
    sent = await outbox(client)
    text = translation("ur", 'This group is now registered as "{name}" and can receive '
                             "messages from this number.").format(name="ACME Team 2")
    assert sent[-1]["text"] == text
    assert f"«{FSI}ACME Team 2{PDI}»" in text


# ----------------------------------------------------------------- level 1, no app


@pytest.fixture(scope="module")
def book() -> LocaleBook:
    return load_locales(ROOT / "locales", "en")


def resolved(book: LocaleBook, text: str, number: str) -> str | None:
    norm = normalize(text)
    owners = book.greetings.lookup(norm)
    return book.resolve(owners, region_of(number), norm) if owners else None


def test_confirmations_differ_between_languages(book: LocaleBook) -> None:
    """So a confirmation equal to a locale's is in that locale's language."""
    texts = {name: data.messages[REGISTERED] for name, data in book.locales.items()}
    assert len(set(texts.values())) == len(texts) == 32


@pytest.mark.parametrize("locale", NEW)
def test_shown_greeting_is_the_languages_own(book: LocaleBook, locale: str) -> None:
    """The greeting a reply tells people to say brings them back to this language
    from any country (so fa shows درود, not the shared سلام)."""
    assert book.greetings.lookup(normalize(book[locale].greeting)) == [locale]


def test_vietnamese_forms_normalize_alike() -> None:
    assert normalize(nfd("Chào bạn")) == normalize("Chào bạn") == normalize("CHÀO BẠN")


# Every country a new language brought in, and the countries of the older shared words.
COUNTRIES = [PK, BD, IN, LK, VN, TH, IR, AF, PL, RO, MD, KE, TZ, "+256712345678", PH, GR,
             "+35799123456", ZA, EG, FR, US, "+15145550100", "+34600000001", "+4915112345678",
             "+31612345678", "+32470123456", "+60123456789", "+6281234567890", "+6591234567",
             "+5511912345678", "+351912345678", "+8613800138000", "+886912345678",
             "+972501234567", "+4523456789", "+46701234567", "+905321234567", "+74951234567"]
# The only outcomes the new languages change, on purpose.
INTENDED = {("salut", "RO"): "ro", ("salut", "MD"): "ro", ("السلام عليكم", "PK"): "ur",
            ("سلام", "PK"): "ur", ("سلام", "IR"): "fa", ("سلام", "AF"): "fa",
            ("namaskar", "BD"): "bn"}


def test_older_greetings_keep_their_outcome(book: LocaleBook, tmp_path: Path) -> None:
    for folder in (ROOT / "locales").iterdir():
        if folder.is_dir() and folder.name not in NEW:
            shutil.copytree(folder, tmp_path / folder.name)
    shutil.copy(ROOT / "locales" / "messages.pot", tmp_path)
    shutil.copy(ROOT / "locales" / "common.toml", tmp_path)
    before = load_locales(tmp_path, "en")
    assert len(before.locales) == 20
    changed = {}
    for data in before.locales.values():
        for greeting in data.greetings:
            if normalize(greeting) in data.local:
                continue  # said only by users of its languages (tests/test_keyword_rules.py)
            for number in COUNTRIES:
                old, new = resolved(before, greeting, number), resolved(book, greeting, number)
                if old != new:
                    changed[normalize(greeting), region_of(number)] = new
    assert changed == INTENDED


def test_older_stop_and_help_words_keep_their_owners(book: LocaleBook) -> None:
    """A language word of the twenty (ALTO, СТОП, توقف ...) is not claimed by a new
    locale; the common STOP, which answers in the user's language, may be."""
    for data in book.locales.values():
        if data.name in NEW:
            continue
        for index, wordlist in ((book.stop_words, data.stop_words),
                                (book.help_words, data.help_words)):
            for word in wordlist:
                owners = index.lookup(normalize(word))
                if "*" not in owners:
                    assert not set(owners) & set(NEW), (word, owners)
