"""The read-mostly runtime state: config and locales, swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Config, load_config
from bot.locales import LocaleBook, load_locales


@dataclass(frozen=True, slots=True)
class Snapshot:
    config: Config
    locales: LocaleBook


def load_snapshot(path: str) -> Snapshot:
    """Parse and validate the config file and its locales (raises ConfigError/LocaleError)."""
    config = load_config(path)
    return Snapshot(config=config, locales=load_locales(config.locales_dir,
                                                        config.defaults.locale))


class SnapshotHolder:
    """Holds the current snapshot; a reload replaces it in one assignment, so a
    request sees the old or the new config, never a mix."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._current = snapshot
        self.generation = 1

    @property
    def current(self) -> Snapshot:
        return self._current

    def swap(self, snapshot: Snapshot) -> None:
        self._current = snapshot
        self.generation += 1


class ReloadError(Exception):
    """The new config or locales were refused; the old ones stay in force."""


def reload_from_disk(holder: SnapshotHolder) -> Snapshot:
    """Re-read the config file and locales; swap them in only if all of it is valid."""
    import logging

    from bot.config import ConfigError
    from bot.locales import LocaleError

    log = logging.getLogger("wagate.reload")
    old = holder.current
    path = old.config.path
    if path is None:
        raise ReloadError("this service was not started from a config file")
    try:
        new = load_snapshot(path)
    except (ConfigError, LocaleError) as exc:
        log.error("reload refused, old config stays in force: %s", exc)
        raise ReloadError(str(exc)) from exc
    if new.config.storage != old.config.storage or new.config.server != old.config.server:
        log.warning("reload: [server] and [storage] changes take effect at the next restart")
    holder.swap(new)
    log.info("reload: config %s and %d locales in force (generation %d)", path,
             len(new.locales.locales), holder.generation)
    return new
