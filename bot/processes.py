"""Several processes: what each one runs, and the supervisor of `wagate serve --workers N`.

The supervisor opens no store and answers no request. It starts the children
(`wagate serve` processes sharing one port through SO_REUSEPORT, each one
answering requests and draining the queues as a lone process does), hands
each the SQLite lock it holds (when there is one) and the read end of a pipe
whose end tells them it died, forwards SIGHUP once it has validated the
config, drains them all on SIGTERM, and restarts one that dies, a bounded
number of times.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import Config, ConfigError
from bot.config.snapshot import ReloadError, Snapshot, SnapshotHolder
from bot.locales import LocaleError
from bot.runtime import Reloader, prepare_reload

log = logging.getLogger("wagate.supervisor")

# A child that dies this often within the window is not restarted again: the
# supervisor stops the others and exits 1, for systemd (or the operator) to see.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
RESTART_DELAY = 1.0
# How long a reload asked of one process over the admin API waits for the
# supervisor's SIGHUP to come back to it.
GROUP_RELOAD_WAIT = 30.0


class GroupReloader(Reloader):
    """A reload asked of one process of a group (`POST /admin/reload`, `wagate
    reload`) reloads them all: it is validated here, so a refusal is answered
    with its reason, then the supervisor validates it once more and sends
    SIGHUP to every process, this one included, which reloads each alone. The
    answer comes once this process has the new config."""

    def __init__(self, holder: SnapshotHolder, supervisor_pid: int, **options: Any) -> None:
        super().__init__(holder, **options)
        self.supervisor_pid = supervisor_pid

    async def reload(self) -> Snapshot:
        try:
            await asyncio.to_thread(prepare_reload, self.holder)
        except ReloadError:
            self._outcome("refused")
            raise
        generation = self.holder.generation
        os.kill(self.supervisor_pid, signal.SIGHUP)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GROUP_RELOAD_WAIT
        while self.holder.generation == generation:
            if loop.time() > deadline:
                raise ReloadError(f"the supervisor (pid {self.supervisor_pid}) did not reload "
                                  f"the processes within {GROUP_RELOAD_WAIT:g}s; see its log")
            await asyncio.sleep(0.05)
        return self.holder.current


@dataclass(slots=True)
class Child:
    name: str  # "process 1": for the log
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    deaths: collections.deque[float] = field(default_factory=collections.deque)


class Supervisor:
    def __init__(self, config: Config, http_processes: int, child_args: list[str],
                 keep_fds: tuple[int, ...] = ()) -> None:
        assert config.path is not None
        self.config = config
        self.pid_file = config.server.pid_file
        self.keep_fds = keep_fds
        self.http_processes = http_processes
        self.metrics_dir = tempfile.mkdtemp(prefix="wagate-metrics-")
        # Never written to: when the supervisor dies, however it dies, its end
        # closes and every child reads EOF on its own end and drains.
        self._parent_end, self._write_end = os.pipe()
        base = [sys.executable, "-m", "bot", "--config", config.path]
        group = ["--supervised", str(self._parent_end), "--group-size", str(http_processes),
                 *child_args]
        # Each process answers requests and drains the queues, as a lone one
        # does, so N processes do N times the work of one: the work a process
        # accepts is mostly sent and delivered by it, woken by its own commits
        # (a drainer process apart ran out first and was woken only by NOTIFY:
        # docs/PERFORMANCE.md).
        self.children = [Child(f"process {i + 1}",
                               [*base, "serve", *group, "--group-index", str(i + 1),
                                *self._worker_id(f"p{i + 1}")])
                         for i in range(http_processes)]
        self._events: asyncio.Queue[tuple[str, Child | None]] = asyncio.Queue()
        self._stopping = False
        self._watches: set[asyncio.Task[int]] = set()

    @staticmethod
    def _worker_id(slot: str) -> list[str]:
        """The worker id of one child and its successors (Group.worker_id):
        unique among live processes, as a process's own would be."""
        return ["--worker-id",
                f"{socket.gethostname()}:{os.getpid()}:{slot}:{secrets.token_hex(4)}"]

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._events.put_nowait, ("reload", None))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._events.put_nowait, ("stop", None))
        try:
            for child in self.children:
                await self._start(child)
            if self.pid_file:
                write_pid_file(self.pid_file)
            server = self.config.server
            log.info("wagate supervisor (pid %d): %d process(es) on http://%s:%d, each "
                     "answering requests and draining the queues", os.getpid(),
                     self.http_processes, server.host, server.port)
            return await self._supervise()
        finally:
            await self._stop_all()
            if self.pid_file:
                remove_pid_file(self.pid_file)
            os.close(self._write_end)
            os.close(self._parent_end)
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    async def _supervise(self) -> int:
        while True:
            event, child = await self._events.get()
            if event == "stop":
                log.info("stopping: draining %d process(es)", len(self.children))
                return 0 if await self._stop_all() else 1
            if event == "reload":
                await self._reload()
            elif event == "restart" and child is not None:
                await self._start(child)
            elif event == "exited" and child is not None and not self._stopping:
                if not self._died(child):
                    return 1

    async def _start(self, child: Child) -> None:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        # A session of its own: a terminal's Ctrl-C reaches the supervisor,
        # which stops the children in order, not each child at once.
        child.proc = proc = await asyncio.create_subprocess_exec(
            *child.argv, env=env, pass_fds=(self._parent_end, *self.keep_fds),
            start_new_session=True)
        log.info("started %s (pid %d)", child.name, proc.pid)
        watch = asyncio.create_task(proc.wait())
        self._watches.add(watch)  # held: the loop keeps only weak references to tasks
        watch.add_done_callback(self._watches.discard)
        watch.add_done_callback(lambda _: self._events.put_nowait(("exited", child)))

    def _died(self, child: Child) -> bool:
        """A child exited on its own: restart it after a breath, unless it keeps
        dying. False when the supervisor gives up."""
        assert child.proc is not None
        pid, code = child.proc.pid, child.proc.returncode
        self._forget(pid)
        now = time.monotonic()
        child.deaths.append(now)
        while child.deaths and child.deaths[0] < now - RESTART_WINDOW:
            child.deaths.popleft()
        if len(child.deaths) > MAX_RESTARTS:
            log.error("%s (pid %d) exited with %s, %d times in %gs: giving up, "
                      "stopping the others", child.name, pid, _said(code), len(child.deaths),
                      RESTART_WINDOW)
            return False
        log.warning("%s (pid %d) exited unexpectedly with %s; restarting it in %gs "
                    "(%d of at most %d restarts in %gs)", child.name, pid, _said(code),
                    RESTART_DELAY, len(child.deaths), MAX_RESTARTS, RESTART_WINDOW)
        asyncio.get_running_loop().call_later(RESTART_DELAY, self._events.put_nowait,
                                              ("restart", child))
        return True

    async def _reload(self) -> None:
        """Validate the file once; only a valid one is sent on (each child reads
        it again and, should it have changed meanwhile, refuses on its own)."""
        from bot.runtime import load_snapshot

        assert self.config.path is not None
        log.info("SIGHUP: validating %s", self.config.path)
        try:
            await asyncio.to_thread(load_snapshot, self.config.path)
        except (ConfigError, LocaleError) as exc:
            log.error("reload refused, the old config stays in force in every process: %s",
                      exc)
            return
        live = [c for c in self.children if c.proc is not None and c.proc.returncode is None]
        for child in live:
            assert child.proc is not None
            child.proc.send_signal(signal.SIGHUP)
        log.info("reload: config valid, SIGHUP sent to %d process(es)", len(live))

    async def _stop_all(self) -> bool:
        """SIGTERM to every child, then wait for each to drain (a second signal to
        the supervisor does not cut this short: the children bound their own
        drain by [server] shutdown_timeout); True when all exited cleanly."""
        self._stopping = True
        # Those still running: one that died before (and was not yet restarted)
        # was reported then.
        live = [c.proc for c in self.children
                if c.proc is not None and c.proc.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        # Requests, then sends and deliveries under way, each bounded by the timeout.
        grace = 3 * self.config.server.shutdown_timeout + 5
        waits = [asyncio.ensure_future(proc.wait()) for proc in live]
        if waits:
            await asyncio.wait(waits, timeout=grace)
        clean = True
        for proc in live:
            if proc.returncode is None:
                log.error("pid %d did not stop within %gs: killed", proc.pid, grace)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            clean = clean and proc.returncode == 0
            self._forget(proc.pid)
        return clean

    def _forget(self, pid: int) -> None:
        """Drop a dead child's live gauges (its process count, config generation)."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.metrics_dir)


def write_pid_file(path: str) -> None:
    """Where `wagate reload --signal` (and systemd) find the process to signal."""
    Path(path).write_text(f"{os.getpid()}\n")


def remove_pid_file(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def _said(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"status {code}"
