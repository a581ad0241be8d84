"""The read-mostly state a request or a job runs under: the config and the
locales, one frozen snapshot, swapped whole on reload (bot/runtime.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.config.types import Config
from bot.locales import LocaleBook


@dataclass(frozen=True, slots=True)
class Snapshot:
    config: Config
    locales: LocaleBook


class SnapshotHolder:
    """Holds the current snapshot; a reload replaces it in one assignment, so a
    request sees the old or the new config, never a mix."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._current = snapshot
        self.generation = 1
        self.loaded_at = time.time()

    @property
    def current(self) -> Snapshot:
        return self._current

    def swap(self, snapshot: Snapshot) -> None:
        self._current = snapshot
        self.generation += 1
        self.loaded_at = time.time()


class ReloadError(Exception):
    """The new config or locales were refused; the old ones stay in force."""
