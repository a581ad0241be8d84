"""The read-mostly state a request or a job runs under: the config and the
locales, one frozen snapshot, swapped whole on reload (bot/runtime.py) and
when the managed state changes (bot/services/managed.py)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from bot.config.managed import ManagedSet, merged
from bot.config.types import Config
from bot.locales import LocaleBook


@dataclass(frozen=True, slots=True)
class Snapshot:
    config: Config
    locales: LocaleBook


class SnapshotHolder:
    """Holds the current snapshot: the file's config with the managed state
    merged in. A reload or a managed change replaces it in one assignment, so a
    request sees the old or the new config, never a mix."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._file = snapshot
        self._managed = ManagedSet()
        self._current = self._merge()
        self.generation = 1  # of the file: +1 per reload
        self.loaded_at = time.time()

    @property
    def current(self) -> Snapshot:
        return self._current

    @property
    def file(self) -> Snapshot:
        """The snapshot as the config file alone says it."""
        return self._file

    @property
    def managed(self) -> ManagedSet:
        return self._managed

    def swap(self, snapshot: Snapshot) -> None:
        """A reloaded file (the managed state stays)."""
        self._file = snapshot
        self._current = self._merge()
        self.generation += 1
        self.loaded_at = time.time()

    def set_managed(self, managed: ManagedSet) -> None:
        """A newly loaded managed state (the file's config stays)."""
        self._managed = managed
        self._current = self._merge()

    def _merge(self) -> Snapshot:
        config = merged(self._file.config, self._managed)
        if config is self._file.config:
            return self._file
        return dataclasses.replace(self._file, config=config)


class ReloadError(Exception):
    """The new config or locales were refused; the old ones stay in force."""
