"""Locales: gettext catalogs and keyword lists, compiled once per load.

Each `locales/<locale>/` folder holds `LC_MESSAGES/messages.po` (read with
Babel) and `keywords.toml` (greetings, stop and help words). Everything is
checked at load: a missing or incomplete catalog is an error, never a silent
fallback to English. The compiled `LocaleBook` is immutable and swapped whole
on reload.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.languages import get_territory_language_info
from babel.messages.pofile import read_po

_PLACEHOLDER = re.compile(r"\{(\w*)\}")
_OFFICIAL = ("official", "de_facto_official")


class LocaleError(ValueError):
    """A locale folder that cannot be used."""


# ----------------------------------------------------------------- normalization


# Tatweel, Arabic harakat, superscript alef and Quranic marks: stretching and
# diacritics users may or may not type (Devanagari or Hebrew letters are not
# touched). Deleted in one str.translate, which runs at C speed.
_ARABIC_MARKS = dict.fromkeys(
    [0x0640, *range(0x064B, 0x0660), 0x0670, *range(0x06D6, 0x06EE), *range(0x08D3, 0x0900)])


def _is_trim(ch: str) -> bool:
    cat = unicodedata.category(ch)
    # Punctuation, symbols (emoji included), separators, controls and the
    # invisible joiners/selectors that come with emoji.
    return cat[0] in "PSZC" or cat == "Me" or ch in "\ufe0f\ufe0e\u200d"


def normalize(text: str) -> str:
    """The comparison form of a message: NFKC, case-folded, trimmed, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_ARABIC_MARKS)
    start, end = 0, len(text)
    while start < end and _is_trim(text[start]):
        start += 1
    while end > start and _is_trim(text[end - 1]):
        end -= 1
    return " ".join(text[start:end].split())


def runs(text: str) -> tuple[str, tuple[int, ...]]:
    """Run-length form: 'hiii' -> ('hi', (1, 3)); letters repeated for emphasis collapse."""
    letters, counts = [], []
    for ch, group in itertools.groupby(text):
        letters.append(ch)
        counts.append(sum(1 for _ in group))
    return "".join(letters), tuple(counts)


class KeywordIndex:
    """Whole-message keyword lookup that tolerates elongation ('Holaaa' = 'Hola').

    An exact normalized match wins; otherwise the message must be the keyword
    with some letters repeated more (never fewer: 'Halo' is not 'Hallo').
    """

    def __init__(self) -> None:
        self._exact: dict[str, list[str]] = {}
        self._collapsed: dict[str, list[tuple[tuple[int, ...], str]]] = {}
        # Elongation keeps a word's set of letters: a text whose set is no
        # keyword's is rejected before the (costlier) run-length form.
        self._letter_sets: set[frozenset[str]] = set()

    def add(self, word: str, owner: str) -> None:
        norm = normalize(word)
        if not norm:
            return
        owners = self._exact.setdefault(norm, [])
        if owner not in owners:
            owners.append(owner)
            collapsed, counts = runs(norm)
            self._collapsed.setdefault(collapsed, []).append((counts, owner))
            self._letter_sets.add(frozenset(norm))

    def lookup(self, norm: str) -> list[str]:
        """Owners of the keyword the normalized text is, or []."""
        if norm in self._exact:
            return self._exact[norm]
        if frozenset(norm) not in self._letter_sets:
            return []
        collapsed, counts = runs(norm)
        found: list[str] = []
        for key_counts, owner in self._collapsed.get(collapsed, ()):
            if all(c >= k for c, k in zip(counts, key_counts, strict=True)) and owner not in found:
                found.append(owner)
        return found


# ----------------------------------------------------------------- catalogs


@dataclass(frozen=True, slots=True)
class LocaleData:
    name: str
    messages: Mapping[str, str]
    greetings: tuple[str, ...]
    stop_words: tuple[str, ...]
    help_words: tuple[str, ...]
    preferred_for: frozenset[str]
    # Normalized greetings that are an ordinary word elsewhere ("Chao"): they
    # count only for a user of this language (handlers/filters.py).
    local: frozenset[str]
    language: str
    script: str | None
    territory: str | None

    @property
    def greeting(self) -> str:
        return self.greetings[0]

    @property
    def stop_word(self) -> str:
        return self.stop_words[0]


COMMON = "*"  # owner of keywords that belong to no language (Ching, STOP)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocaleBook:
    locales: Mapping[str, LocaleData]
    default: str
    greetings: KeywordIndex
    stop_words: KeywordIndex
    help_words: KeywordIndex
    # Owners of the local greetings (LocaleData.local), elongation included.
    local_greetings: KeywordIndex = field(default_factory=KeywordIndex)
    template: frozenset[str] = field(default_factory=frozenset)
    _country_cache: dict[str, str | None] = field(default_factory=dict)
    _country_locales_cache: dict[str, frozenset[str]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> LocaleData:
        return self.locales[name]

    def for_country(self, region: str | None, candidates: list[str] | None = None) -> str | None:
        """The locale the number's country speaks, among candidates (all when None)."""
        if not region:
            return None
        if candidates is None and region in self._country_cache:
            return self._country_cache[region]  # every message asks: checked first
        pool = list(self.locales) if candidates is None else [
            c for c in candidates if c in self.locales]
        chosen = None
        for code in _country_languages(region):
            chosen = self._match(code, region, pool)
            if chosen:
                break
        if candidates is None:
            self._country_cache[region] = chosen
        return chosen

    def country_locales(self, region: str | None) -> frozenset[str]:
        """The locales of the languages the number's country speaks: its official
        (or de facto official) languages as CLDR lists them."""
        if not region:
            return frozenset()
        found = self._country_locales_cache.get(region)
        if found is None:
            pool = list(self.locales)
            found = frozenset(name for code in _country_languages(region)
                              if (name := self._match(code, region, pool)) is not None)
            self._country_locales_cache[region] = found
        return found

    def _match(self, code: str, region: str, pool: list[str]) -> str | None:
        """Best locale of `pool` for a CLDR territory language code like 'pt' or 'zh_Hant'."""
        lang, _, script = code.partition("_")
        same_lang = [n for n in pool if self.locales[n].language == lang]
        if not same_lang:
            return None
        for name in same_lang:  # exact script ('zh_Hant' in Taiwan)
            if script and self.locales[name].script == script:
                return name
        if script:
            return None
        for name in same_lang:  # the country's own variant ('pt_BR' in Brazil)
            if self.locales[name].territory == region:
                return name
        for name in same_lang:  # the plain language ('de')
            if self.locales[name].territory is None and self.locales[name].script is None:
                return name
        # Several variants and none is the country's own: the one that takes
        # shared words (zh_Hans for 'zh' in China, pt_PT for 'pt' in Angola).
        main = [n for n in same_lang if self.locales[n].preferred_for]
        return (main or sorted(same_lang))[0]

    def resolve(self, owners: list[str], region: str | None, keyword_norm: str) -> str:
        """Settle a keyword claimed by several locales: country first, then preference."""
        langs = [o for o in owners if o != COMMON]
        if len(langs) == 1:
            return langs[0]
        if not langs:  # a word of no language: the country's, else the default
            return self.for_country(region) or self.default
        by_country = self.for_country(region, langs)
        if by_country:
            return by_country
        for name in langs:
            if keyword_norm in self.locales[name].preferred_for:
                return name
        return sorted(langs)[0]

    def region_locale(self, region: str | None) -> str:
        return self.for_country(region) or self.default


@functools.lru_cache(maxsize=1024)
def _country_languages(region: str) -> tuple[str, ...]:
    """CLDR language codes of a country, most spoken first: its official ones,
    or, for a country with none, all it speaks."""
    info = get_territory_language_info(region)
    ranked = sorted(info.items(), key=lambda kv: -(kv[1].get("population_percent") or 0))
    official = [code for code, i in ranked if i.get("official_status") in _OFFICIAL]
    return tuple(official or [code for code, _ in ranked])


@functools.lru_cache(maxsize=65536)  # phonenumbers parsing is slow; numbers recur
def region_of(number: str | None) -> str | None:
    """ISO country of an E.164 number, or None."""
    if not number or not number.startswith("+"):
        return None
    # A calling code of one country names it: no parse (each new sender costs
    # one otherwise). Shared codes (+1, +7, +44, ...) need the whole number.
    # The code is found as phonenumbers finds it: the shortest known prefix.
    digits = number[1:4]
    for size in (1, 2, 3):
        if digits[:size].isdigit():
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
            if regions is not None:
                # (parse refuses a national part outside 2-17 digits)
                if len(regions) == 1 and number[1:].isdigit() and \
                        2 <= len(number) - 1 - size <= 17:
                    return regions[0]
                break
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None


def _read_catalog(path: Path, name: str) -> dict[str, str]:
    try:
        with path.open("rb") as fh:
            catalog = read_po(fh, locale=None, abort_invalid=True)
    except FileNotFoundError:
        raise LocaleError(f"{path}: missing catalog for locale {name!r}") from None
    except Exception as exc:  # babel raises several types for broken files
        raise LocaleError(f"{path}: broken catalog: {exc}") from exc
    messages: dict[str, str] = {}
    for message in catalog:
        if not message.id or not isinstance(message.id, str):
            continue
        if message.fuzzy:
            raise LocaleError(f"{path}: fuzzy translation of {message.id!r}")
        if not isinstance(message.string, str) or not message.string:
            raise LocaleError(f"{path}: {message.id!r} is not translated")
        if set(_PLACEHOLDER.findall(message.string)) != set(_PLACEHOLDER.findall(message.id)):
            raise LocaleError(f"{path}: {message.id!r}: placeholders differ in the translation")
        messages[message.id] = message.string
    return messages


def _read_keywords(path: Path) -> dict[str, list[str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LocaleError(f"{path}: missing keyword list") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LocaleError(f"{path}: invalid TOML: {exc}") from exc
    out: dict[str, list[str]] = {}
    for key in ("greetings", "stop", "help", "preferred_for", "local"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise LocaleError(f"{path}: {key} must be a list of non-empty strings")
        out[key] = value
    return out


def load_locales(directory: str | Path, default: str) -> LocaleBook:
    """Compile every locale folder under `directory`. Raises LocaleError.

    The book is immutable, so one compiled from the same files is handed out
    again (each start and reload of a process, each app of a test run);
    a file added, removed or changed since is read afresh."""
    root = Path(directory)
    if not root.is_dir():
        raise LocaleError(f"{root}: locales folder not found")
    # The files' contents, not their times: two edits within one clock tick
    # leave the same mtime. Reading them is a tenth of compiling them.
    digest = hashlib.blake2b()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return _compile(root, root.resolve(), default, digest.hexdigest())


@functools.lru_cache(maxsize=4)  # a few: a reload's new book beside the one in force
def _compile(root: Path, resolved: Path, default: str, contents: str) -> LocaleBook:
    """The book of the folder (`root` as named, `resolved` where it is) whose
    files' names and bytes hash to `contents`."""
    template_path = root / "messages.pot"
    template: frozenset[str] = frozenset()
    if template_path.exists():
        with template_path.open("rb") as fh:
            template = frozenset(m.id for m in read_po(fh) if m.id and isinstance(m.id, str))
    greetings, stops, helps, local_index = (KeywordIndex(), KeywordIndex(), KeywordIndex(),
                                            KeywordIndex())
    indexes = {"greetings": greetings, "stop": stops, "help": helps}

    def index_words(words: dict[str, list[str]], owner: str) -> None:
        for key, index in indexes.items():
            for word in words[key]:
                index.add(word, owner)

    common = root / "common.toml"
    if common.exists():
        index_words(_read_keywords(common), COMMON)
    locales: dict[str, LocaleData] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name
        try:
            parsed = Locale.parse(name)
        except (ValueError, UnknownLocaleError):
            raise LocaleError(f"{folder}: {name!r} is not a locale name") from None
        messages = _read_catalog(folder / "LC_MESSAGES" / "messages.po", name)
        missing = sorted(template - messages.keys())
        if missing:
            raise LocaleError(f"{folder}: catalog misses {missing[0]!r}")
        words = _read_keywords(folder / "keywords.toml")
        for key in ("greetings", "stop"):
            if not words[key]:
                raise LocaleError(f"{folder}/keywords.toml: {key} must not be empty")
        greetings_norm = {normalize(w) for w in words["greetings"]}
        local = frozenset(normalize(w) for w in words["local"])
        if not local <= greetings_norm:
            raise LocaleError(f"{folder}/keywords.toml: local word "
                              f"{sorted(local - greetings_norm)[0]!r} is not a greeting")
        index_words(words, name)
        for word in words["local"]:
            local_index.add(word, name)
        locales[name] = LocaleData(
            name=name, messages=messages, greetings=tuple(words["greetings"]),
            stop_words=tuple(words["stop"]), help_words=tuple(words["help"]),
            preferred_for=frozenset(normalize(w) for w in words["preferred_for"]), local=local,
            language=parsed.language, script=parsed.script, territory=parsed.territory)
    if not locales:
        raise LocaleError(f"{root}: no locale folders")
    if default not in locales:
        raise LocaleError(f"{root}: default locale {default!r} has no folder")
    return LocaleBook(locales=locales, default=default, greetings=greetings, stop_words=stops,
                      help_words=helps, local_greetings=local_index, template=template)


# ----------------------------------------------------------------- gettext

current_locale: ContextVar[LocaleData | None] = ContextVar("current_locale", default=None)


def gettext(message: str) -> str:
    """Translate into the locale of the handler being run (see `current_locale`)."""
    data = current_locale.get()
    if data is None:
        return message
    return data.messages.get(message, message)


_ = gettext
