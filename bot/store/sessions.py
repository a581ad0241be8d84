"""The WebSessions port (the pages' sessions): its columns and row mapping,
shared by both backends (bot/store/sqlite/sessions.py,
bot/store/postgres/sessions.py), whose statements differ only in their
placeholders. A session ended by one process is ended for all of them."""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.store.models import WebSession

SESSION_COLUMNS = "key_hash, role, subject, credential, csrf, created_at, expires_at"
_FIELDS = SESSION_COLUMNS.split(", ")


def session_row(row: Any) -> WebSession:
    return WebSession(**{name: row[i] for i, name in enumerate(_FIELDS)})


def session_values(session: WebSession) -> tuple[Any, ...]:
    return tuple(getattr(session, f.name) for f in dataclasses.fields(session))
