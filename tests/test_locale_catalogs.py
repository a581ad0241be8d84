"""The shipped locales: complete catalogs and consistent keyword lists.

Every folder under locales/ is a locale and is checked against
locales/messages.pot and the product's seed greetings.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

LOCALES = Path(__file__).resolve().parent.parent / "locales"
TEMPLATE = LOCALES / "messages.pot"
PLACEHOLDER = re.compile(r"\{(\w*)\}")
KEYWORD_LISTS = ("greetings", "stop", "help")

REQUIRED = ("en", "zh_Hans", "zh_Hant", "ja", "it", "id", "ms", "de", "nl", "es", "pt_BR",
            "pt_PT", "fr", "ru", "uk", "hi", "he", "ar", "ko", "tr", "ur", "bn", "ta", "vi",
            "th", "fa", "pl", "ro", "sw", "fil", "el", "zu")

# The product table: these greetings must register in exactly this locale.
SEED_GREETINGS = {
    "en": ["Hi"],
    "zh_Hans": ["嗨", "你好"],
    "zh_Hant": ["安安"],
    "ja": ["こんにちは", "ハイ"],
    "it": ["Ciao"],
    "id": ["Hai"],
    "ms": ["Hai"],
    "de": ["Hallo"],
    "nl": ["Hallo", "Hoi"],
    "es": ["Hola"],
    "pt_BR": ["Oi"],
    "pt_PT": ["Oi"],
    "fr": ["Salut"],
    "ru": ["Здравствуй"],
    "uk": ["Привіт"],
    "hi": ["नमस्ते"],
    "he": ["היי"],
    "ar": ["مرحبا", "سلام"],
    "ur": ["السلام علیکم", "سلام", "Assalam o Alaikum", "AoA"],
    "bn": ["নমস্কার", "হ্যালো", "আসসালামু আলাইকুম"],
    "ta": ["வணக்கம்", "Vanakkam"],
    "vi": ["Xin chào", "Chào", "Chào bạn", "Xin chao", "Chao", "Chao ban"],
    "th": ["สวัสดี", "สวัสดีครับ", "สวัสดีค่ะ", "สวัสดีคะ"],
    "fa": ["سلام", "درود"],
    "pl": ["Cześć", "Dzień dobry", "Hej", "Czesc", "Dzien dobry"],
    "ro": ["Bună", "Bună ziua", "Salut", "Buna", "Buna ziua"],
    "sw": ["Jambo", "Habari", "Hujambo", "Mambo"],
    "fil": ["Kumusta", "Kamusta", "Musta", "Kumusta po", "Kamusta po", "Musta po"],
    "el": ["Γεια", "Γειά σου", "Γεια σας", "Καλημέρα", "Geia", "Kalimera"],
    "zu": ["Sawubona", "Sanibonani"],
}


def discover(root: Path = LOCALES) -> list[str]:
    """Every folder is a locale (the loader reads them all), with a catalog or not."""
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def fold(word: str) -> str:
    return " ".join(word.casefold().split())


def load_template(path: Path = TEMPLATE) -> list[str]:
    with path.open("rb") as fh:
        return [m.id for m in read_po(fh) if m.id and isinstance(m.id, str)]


def load_catalog(root: Path, locale: str):
    with (root / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, abort_invalid=True)


def load_keywords(root: Path, locale: str) -> dict:
    return tomllib.loads((root / locale / "keywords.toml").read_text(encoding="utf-8"))


def catalog_problems(root: Path, locale: str, template: list[str]) -> list[str]:
    """Everything wrong with one locale's catalog, as readable lines."""
    try:
        catalog = load_catalog(root, locale)
    except FileNotFoundError:
        return [f"{locale}: LC_MESSAGES/messages.po is missing"]
    problems = []
    language = dict(catalog.mime_headers).get("Language")
    if language != locale:
        problems.append(f"{locale}: Language header is {language!r}, expected {locale!r}")
    for msgid in template:
        message = catalog.get(msgid)
        if message is None:
            problems.append(f"{locale}: missing {msgid!r}")
            continue
        text = message.string
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{locale}: empty translation of {msgid!r}")
            continue
        if message.fuzzy:
            problems.append(f"{locale}: fuzzy translation of {msgid!r}")
        want, got = set(PLACEHOLDER.findall(msgid)), set(PLACEHOLDER.findall(text))
        if want != got:
            problems.append(f"{locale}: placeholders of {msgid!r} are {sorted(got)}, "
                            f"expected {sorted(want)}")
        if locale != "en" and text.strip() == msgid.strip():
            problems.append(f"{locale}: {msgid!r} is left in English")
    extra = [m.id for m in catalog if m.id and m.id not in template]
    extra += [key if isinstance(key, str) else key[0] for key in catalog.obsolete]
    for msgid in extra:
        problems.append(f"{locale}: {msgid!r} is not in messages.pot (obsolete or extra)")
    return problems


def keyword_problems(root: Path, locales: list[str]) -> list[str]:
    """Keyword lists of all locales: shape, seed greetings, ties and clashes."""
    problems = []
    words: dict[str, dict] = {}
    for locale in locales:
        path = root / locale / "keywords.toml"
        try:
            data = load_keywords(root, locale)
        except FileNotFoundError:
            problems.append(f"{locale}: keywords.toml is missing")
            continue
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"{locale}: keywords.toml does not parse: {exc}")
            continue
        for key in (*KEYWORD_LISTS, "preferred_for", "local"):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip()
                                                      for v in value):
                problems.append(f"{path}: {key} must be a list of non-empty strings")
                data[key] = []
            elif key in KEYWORD_LISTS and not value:
                problems.append(f"{path}: {key} must not be empty")
        words[locale] = data

    for locale, seeds in SEED_GREETINGS.items():
        have = {fold(g) for g in words.get(locale, {}).get("greetings", [])}
        for seed in seeds:
            if locale in words and fold(seed) not in have:
                problems.append(f"{locale}: seed greeting {seed!r} is missing")

    owners: dict[str, list[str]] = {}
    for locale, data in words.items():
        for greeting in dict.fromkeys(fold(g) for g in data["greetings"]):
            owners.setdefault(greeting, []).append(locale)
        greetings = {fold(g) for g in data["greetings"]}
        for key in ("preferred_for", "local"):
            for word in data.get(key, []):
                if fold(word) not in greetings:
                    problems.append(f"{locale}: {key} {word!r} is not one of its greetings")
    for greeting, sharing in sorted(owners.items()):
        if len(sharing) < 2:
            continue
        if all(greeting in {fold(w) for w in words[loc].get("local", [])} for loc in sharing):
            continue  # local everywhere: only users of its languages say it, none preferred
        preferring = [loc for loc in sharing
                      if greeting in {fold(w) for w in words[loc]["preferred_for"]}]
        if len(preferring) != 1:
            problems.append(f"greeting {greeting!r} is shared by {sharing} but is in the "
                            f"preferred_for of {preferring or 'none of them'} (need exactly one)")

    commands: dict[str, list[str]] = {}
    sources = dict(words)
    common = root / "common.toml"
    if common.exists():
        sources["common.toml"] = tomllib.loads(common.read_text(encoding="utf-8"))
    for source, data in sources.items():
        for key in ("stop", "help"):
            for word in data.get(key, []):
                commands.setdefault(fold(word), []).append(f"{source} {key}")
    for source, data in sources.items():
        for greeting in data.get("greetings", []):
            if fold(greeting) in commands:
                problems.append(f"{source}: greeting {greeting!r} is also a command word "
                                f"({', '.join(commands[fold(greeting)])})")
    return problems


# ----------------------------------------------------------------- tests

CATALOGS = discover()


def test_required_locales_are_shipped() -> None:
    missing = [loc for loc in REQUIRED if loc not in CATALOGS]
    assert not missing, f"no locale folder for: {missing}"


def test_template_lists_the_messages() -> None:
    template = load_template()
    assert template, "locales/messages.pot has no msgids"
    assert len(template) == len(set(template)), "locales/messages.pot repeats a msgid"


@pytest.mark.parametrize("locale", CATALOGS)
def test_catalog_is_complete(locale: str) -> None:
    problems = catalog_problems(LOCALES, locale, load_template())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("locale", CATALOGS)
def test_translations_format(locale: str) -> None:
    """Every reply formats with the values the handlers pass."""
    catalog = load_catalog(LOCALES, locale)
    words = load_keywords(LOCALES, locale)
    for message in catalog:
        if message.id and isinstance(message.string, str) and message.string:
            message.string.format(stop=words["stop"][0], greeting=words["greetings"][0],
                                  name="Family")


# Right-to-left catalogs whose values may be left-to-right (a Latin group name, STOP):
# each placeholder sits between FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE so it
# keeps its own direction and does not reorder the punctuation around it.
ISOLATED = ("ur", "fa", "ar", "he")


@pytest.mark.parametrize("locale", ISOLATED)
def test_right_to_left_placeholders_are_isolated(locale: str) -> None:
    for message in load_catalog(LOCALES, locale):
        if not message.id:
            continue
        bare = re.sub("\u2068\\{\\w*\\}\u2069", "", message.string)
        assert not PLACEHOLDER.search(bare), f"{locale}: {message.string!r}"
        assert "\u2068" not in bare and "\u2069" not in bare, f"{locale}: stray isolate"


def test_keywords() -> None:
    problems = keyword_problems(LOCALES, CATALOGS)
    assert not problems, "\n".join(problems)


def test_checks_catch_mistakes(tmp_path: Path) -> None:
    """The checks above fail on a broken copy of a locale."""
    template = load_template()
    copies = ["es", "pt_BR", "pt_PT"]
    for locale in copies:
        target = tmp_path / locale / "LC_MESSAGES"
        target.mkdir(parents=True)
        po = (LOCALES / locale / "LC_MESSAGES" / "messages.po").read_text(encoding="utf-8")
        (target / "messages.po").write_text(po, encoding="utf-8")
        toml = (LOCALES / locale / "keywords.toml").read_text(encoding="utf-8")
        (tmp_path / locale / "keywords.toml").write_text(toml, encoding="utf-8")
    assert catalog_problems(tmp_path, "es", template) == []
    assert keyword_problems(tmp_path, copies) == []

    po_path = tmp_path / "es" / "LC_MESSAGES" / "messages.po"
    broken = po_path.read_text(encoding="utf-8").replace("responde {stop}", "responde {parar}")
    po_path.write_text(broken, encoding="utf-8")
    assert any("placeholders" in p for p in catalog_problems(tmp_path, "es", template))

    kw_path = tmp_path / "pt_PT" / "keywords.toml"
    kw_path.write_text(kw_path.read_text(encoding="utf-8").replace(
        'preferred_for = ["Oi", ', "preferred_for = ["), encoding="utf-8")
    assert any("'oi' is shared" in p for p in keyword_problems(tmp_path, copies))

    (tmp_path / "ro").mkdir()  # a folder without a catalog is a locale all the same
    assert "ro" in discover(tmp_path)
    assert catalog_problems(tmp_path, "ro", template) == ["ro: LC_MESSAGES/messages.po is missing"]
