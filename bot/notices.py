"""What provider notices mean for sending: an account restricted or disabled
(shown in /readyz and on the dashboard), and templates Meta paused, disabled
or rejected (not used: a send falls back as if none were configured).

Pure readings of stored notices (bot/store/models.py NoticeRow, newest first)
and of a notice as it arrives; nothing here talks to the store.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from bot.events import ProviderNotice
from bot.store.models import NoticeRow

ACCOUNT_KIND = "account_update"
TEMPLATE_KIND = "message_template_status_update"
# Meta's template states that keep a template from being sent.
UNUSABLE_STATES = {"PAUSED": "paused", "DISABLED": "disabled", "REJECTED": "rejected",
                   "PENDING_DELETION": "being deleted", "DELETED": "deleted"}
# Meta's account events that tell the account's state; the newest decides.
_ACCOUNT_STATES = {"ACCOUNT_RESTRICTION", "DISABLED_UPDATE", "ACCOUNT_DELETED",
                   "ACCOUNT_OFFBOARDED", "ACCOUNT_RECONNECTED"}


def _detail(row: NoticeRow) -> Mapping[str, Any]:
    try:
        detail = json.loads(row.detail)
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {}


def _until(expiration: Any) -> str:
    if isinstance(expiration, int | float) and not isinstance(expiration, bool):
        try:
            return " until " + dt.datetime.fromtimestamp(expiration, dt.UTC).strftime(
                "%Y-%m-%d %H:%M UTC")
        except (OverflowError, OSError, ValueError):
            return ""
    return ""


def account_problems(rows: Iterable[NoticeRow]) -> list[str]:
    """What the newest account notice that tells a state says is wrong with each
    provider's account (empty when nothing is, or it was lifted)."""
    problems: list[str] = []
    decided: set[str] = set()
    for row in rows:  # newest first
        if row.kind != ACCOUNT_KIND or row.event not in _ACCOUNT_STATES \
                or row.provider in decided:
            continue
        decided.add(row.provider)
        detail = _detail(row)
        who = f"{row.provider} account"
        if row.event == "ACCOUNT_RESTRICTION":
            kinds = [f"{r.get('restriction_type')}{_until(r.get('expiration'))}"
                     for r in detail.get("restriction_info") or [] if isinstance(r, dict)]
            problems.append(f"{who} restricted by the provider: "
                            + (", ".join(kinds) or "no detail given"))
        elif row.event == "DISABLED_UPDATE":
            ban = detail.get("ban_info") if isinstance(detail.get("ban_info"), dict) else {}
            state = str(ban.get("waba_ban_state") or "")
            if state != "REINSTATE":
                since = f" ({ban.get('waba_ban_date')})" if ban.get("waba_ban_date") else ""
                problems.append(f"{who} disabled by the provider: {state or 'DISABLE'}{since}")
        elif row.event in ("ACCOUNT_DELETED", "ACCOUNT_OFFBOARDED"):
            problems.append(f"{who} {row.event.removeprefix('ACCOUNT_').lower()} "
                            "by the provider")
    return problems


def template_state(notice: ProviderNotice | NoticeRow) -> tuple[str, str | None] | None:
    """(template name, why it cannot be sent, or None when it can again) of a
    template status notice; None for any other notice."""
    if notice.kind != TEMPLATE_KIND:
        return None
    detail = notice.detail if isinstance(notice, ProviderNotice) else _detail(notice)
    name = detail.get("message_template_name")
    if not isinstance(name, str) or not name:
        return None
    state = UNUSABLE_STATES.get(str(notice.event or detail.get("event") or "").upper())
    if state is None:
        return name, None
    other = detail.get("other_info")
    reason = detail.get("reason") or (other.get("description") if isinstance(other, dict)
                                      else None)
    because = f" ({reason})" if reason and reason != "NONE" else ""
    return name, f"{state} by the provider{because}"


class TemplateStates:
    """Templates a provider will not send, by name, with why: read from the
    stored notices at start and kept current as notices arrive."""

    def __init__(self) -> None:
        self.unusable: dict[str, str] = {}

    def load(self, rows: Iterable[NoticeRow]) -> None:
        """From stored template notices, newest first: each template's newest word."""
        unusable: dict[str, str] = {}
        seen: set[str] = set()
        for row in rows:
            state = template_state(row)
            if state is None or state[0] in seen:
                continue
            seen.add(state[0])
            if state[1] is not None:
                unusable[state[0]] = state[1]
        self.unusable = unusable

    def seen(self, notice: ProviderNotice) -> None:
        state = template_state(notice)
        if state is None:
            return
        name, why = state
        if why is None:
            self.unusable.pop(name, None)
        else:
            self.unusable[name] = why
