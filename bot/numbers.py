"""Phone numbers as users type them -> E.164, through `phonenumbers`."""

from __future__ import annotations

import functools
import re

import phonenumbers

_NOISE = re.compile(r"[\s\-().]")


def to_e164(raw: object) -> str | None:
    """'+34 600-000-001', '34600000001', '0034600000001' -> '+34600000001'; else None.

    Numbers are always international (country code first), with or without
    '+'; a number that is not possible for its country is refused.
    """
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return None
    return _to_e164(str(raw))


@functools.lru_cache(maxsize=65536)  # phonenumbers parsing is slow; numbers recur
def _to_e164(raw: str) -> str | None:
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
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
