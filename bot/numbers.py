"""Phone numbers as users type them -> E.164, through `phonenumbers`."""

from __future__ import annotations

import functools
import re

import phonenumbers

_NOISE = re.compile(r"[\s\-().]")


def to_e164(raw: object, *, typed: bool = False) -> str | None:
    """'+34 600-000-001', '34600000001', '0034600000001' -> '+34600000001'; else None.

    Numbers are always international (country code first), with or without
    '+'; a number that is not possible for its country is refused. `typed`
    (a number an API client typed for a recipient) is stricter where neither
    '+' nor '00' was written: the digits must then make a *valid* number, not
    only a possible one, so a national number missing its country code
    ('600000009', not Malaysia's +60 0000009) is refused rather than misread.
    """
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return None
    return _to_e164(str(raw), typed and not written_international(raw))


def written_international(raw: object) -> bool:
    """Whether the number was written with '+' or '00' in front of the country code."""
    return isinstance(raw, str) and _NOISE.sub("", raw).startswith(("+", "00"))


@functools.lru_cache(maxsize=65536)  # phonenumbers parsing is slow; numbers recur
def _to_e164(raw: str, must_be_valid: bool) -> str | None:
    text = _NOISE.sub("", raw)
    if text.startswith("00"):
        text = text[2:]
    text = text.removeprefix("+")
    if not text.isdigit() or not 6 <= len(text) <= 15:
        return None
    try:
        parsed = phonenumbers.parse("+" + text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    if must_be_valid and not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
