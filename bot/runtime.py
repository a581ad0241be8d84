"""Reloading the read-mostly runtime state: config and locales, read from disk,
validated whole and swapped in (the snapshot itself: bot/config/snapshot.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bot.config import ConfigError
from bot.config.load import load_config
from bot.config.snapshot import ReloadError, Snapshot, SnapshotHolder
from bot.locales import LocaleError, load_locales

log = logging.getLogger("wagate.reload")


def load_snapshot(path: str) -> Snapshot:
    """Parse and validate the config file and its locales (raises ConfigError/LocaleError)."""
    config = load_config(path)
    return Snapshot(config=config, locales=load_locales(config.locales_dir,
                                                        config.defaults.locale))


def prepare_reload(holder: SnapshotHolder) -> Snapshot:
    """Parse and validate the config file and locales the service runs from, without
    installing them. Raises ReloadError (after logging file, line and key)."""
    path = holder.current.config.path
    if path is None:
        raise ReloadError("this service was not started from a config file")
    try:
        return load_snapshot(path)
    except (ConfigError, LocaleError) as exc:
        log.error("reload refused, old config stays in force: %s", exc)
        raise ReloadError(str(exc)) from exc


def install(holder: SnapshotHolder, new: Snapshot) -> Snapshot:
    """Swap a validated snapshot in: one assignment, so every request that reads
    `holder.current` once sees the whole old config or the whole new one."""
    old = holder.current
    if new.config.storage != old.config.storage or new.config.server != old.config.server:
        log.warning("reload: [server] and [storage] changes take effect at the next restart")
    holder.swap(new)
    log.info("reload: config %s and %d locales in force (generation %d)", new.config.path,
             len(new.locales.locales), holder.generation)
    return new


class Reloader:
    """Every reload of a running service goes through here (SIGHUP, `POST
    /admin/reload`, `wagate reload`).

    Parsing runs on a thread, so requests keep being answered meanwhile, with the
    old config; reloads run one at a time, so the last file read is the one that
    stays; a burst of signals coalesces into at most one more reload after the one
    running, which reads the file as it is by then.
    """

    def __init__(self, holder: SnapshotHolder,
                 on_outcome: Callable[[str], None] | None = None) -> None:
        self.holder = holder
        self.on_outcome = on_outcome  # "ok" | "refused"
        self._lock = asyncio.Lock()
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    async def reload(self) -> Snapshot:
        """Reload the service now (after any reload under way); raises ReloadError
        when refused. In a group of processes, every one of them (GroupReloader)."""
        return await self.reload_here()

    async def reload_here(self) -> Snapshot:
        """Reload this process now (after any reload under way); raises ReloadError
        when refused."""
        async with self._lock:
            try:
                new = await asyncio.to_thread(prepare_reload, self.holder)
            except ReloadError:
                self._outcome("refused")
                raise
            install(self.holder, new)
            self._outcome("ok")
            return new

    def request(self) -> None:
        """Ask for a reload without waiting (a signal handler): coalesces bursts."""
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="reload")

    async def _drain(self) -> None:
        while self._pending:
            self._pending = False
            try:
                await self.reload_here()
            except ReloadError:
                pass  # logged with file, line and key; the old config stays
            except Exception:
                log.exception("reload failed unexpectedly; the old config stays in force")

    async def close(self) -> None:
        """Let a reload under way finish (it only reads files)."""
        self._pending = False
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task], timeout=10)

    def _outcome(self, outcome: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome)
