"""Business-scoped user ids: how a provider names a user it gives no number for.

Meta's look like "US.13491208655302741918" (a country, a dot, digits). A user
known only by one is keyed on it wherever a number would stand; a message
carrying both links the two (bot/store).
"""

from __future__ import annotations

import re

_USER_ID = re.compile(r"[A-Z]{2}\.[0-9A-Za-z]{1,64}")


def is_user_id(value: object) -> bool:
    """Whether `value` is written as a business-scoped user id (never a phone number)."""
    return isinstance(value, str) and _USER_ID.fullmatch(value) is not None
