"""Reading a provider's JSON payload defensively: a field of the wrong type
reads as absent, never as an exception, so one odd item never fails a batch.
Shared by the providers whose webhooks post JSON (Meta, WAHA)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Timestamps are epoch seconds; anything else (NaN, infinities, years
# datetime cannot show) is no timestamp at all.
_MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins valid pairs


def as_str(value: Any) -> str | None:
    """A string field as the store can keep it, else None: lone surrogates
    (which UTF-8 cannot carry) become U+FFFD, so the message is still kept."""
    if not isinstance(value, str):
        return None
    return _LONE_SURROGATE.sub("\ufffd", value)


def as_dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def as_timestamp(value: Any) -> float:
    try:
        ts = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return ts if 0 <= ts <= _MAX_TIMESTAMP else 0.0  # NaN fails both comparisons


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_number(value: Any) -> float | int | None:
    """A number, or a string that reads as one (Twilio's coordinates, some
    engines' prices); None for anything else, NaN and infinities included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that are present: an optional field is left out, not null."""
    return {k: v for k, v in fields.items() if v is not None and v != [] and v != {}}
