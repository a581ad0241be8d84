"""The sandbox carries everything the send API accepts."""

from __future__ import annotations

from bot.kinds import STATUSES
from bot.providers.base import Capabilities

CAPS = Capabilities(statuses={s: s for s in STATUSES})
