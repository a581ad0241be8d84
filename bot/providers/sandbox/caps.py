"""The sandbox carries everything the send API accepts."""

from __future__ import annotations

from bot.kinds import STATUSES, Status
from bot.providers.base import Capabilities

CAPS = Capabilities(statuses={s: Status(s) for s in STATUSES})
