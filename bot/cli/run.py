"""`wagate serve` and `wagate worker`: build the app for a process's roles and
run it (the lifecycle itself is the server's: bot/web/server.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.common import DEFAULT_CONFIG, CommandError, config_given, load
from bot.cli.options import Subparsers, command, common, log_options, supervised

if TYPE_CHECKING:
    from bot.config import Config
    from bot.roles import Group, Roles


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.logs import configure
    from bot.roles import Roles
    from bot.web.server import CannotListen, check_can_listen

    configure(level=args.log_level, fmt=args.log_format)
    config = load(args)
    if not config_given(args) and Path(config.path or "").name == DEFAULT_CONFIG:
        print(example_notice(config), file=sys.stderr, flush=True)
    if args.workers is not None:
        return _supervise(args, config)
    supervised = args.supervised is not None  # a child of `serve --workers N`
    if not supervised:  # its supervisor checked the port (its children share it)
        try:
            check_can_listen(config.server.host, config.server.port)
        except CannotListen as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    # A group's pid file is its supervisor's: SIGHUP there reaches every process.
    pid_file = None if supervised else config.server.pid_file
    return run_process(args, config, Roles(drainers=not args.no_drainers, group=_group(args)),
                       pid_file=pid_file, started=f"wagate serving on http://"
                       f"{config.server.host}:{config.server.port} "
                       f"({len(config.instances)} instance(s))")


def example_notice(config: Config) -> str:
    """Said at the start of a `wagate serve` that fell back on the checkout's
    example config: its admin token is written there for anyone to read."""
    path = Path(config.path or DEFAULT_CONFIG).resolve()
    return (f"notice: no --config and no WAGATE_CONFIG: running the example config {path} "
            "with its example admin token; not for a deployment: pass --config PATH")


def cmd_worker(args: argparse.Namespace) -> int:
    """The queue drainers alone: no HTTP listener."""
    from bot.logs import configure
    from bot.roles import Roles

    configure(level=args.log_level, fmt=args.log_format)
    config = load(args)
    return run_process(args, config, Roles(http=False, group=_group(args)), pid_file=None,
                       started=f"wagate worker (pid {os.getpid()}): sending and delivering "
                       f"from the queues of {config.path}")


def run_process(args: argparse.Namespace, config: Config, roles: Roles, *,
                pid_file: str | None, started: str) -> int:
    """Lock the store (unless a supervisor holds the lock for this process),
    build the app for `roles` and run it. Before anything starts: a second
    wagate on a SQLite file in use must not open the store, start workers or
    touch the first one's pid file."""
    from aiohttp import web

    from bot import heap
    from bot.app import create_app
    from bot.locales import LocaleError
    from bot.processes import remove_pid_file, write_pid_file
    from bot.store import StoreUnavailable
    from bot.store.lock import StoreInUse, lock_for
    from bot.web.server import CannotListen, run_app

    try:
        lock = None if args.supervised is not None else lock_for(config.storage)
    except StoreInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            app = create_app(config, roles)
        except (LocaleError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        log = logging.getLogger("wagate")

        async def on_startup(app: web.Application) -> None:
            if pid_file:
                write_pid_file(pid_file)
            heap.freeze()
            log.info("%s", started)

        async def on_cleanup(app: web.Application) -> None:
            if pid_file:
                remove_pid_file(pid_file)
            log.info("wagate stopped" if roles.http else "wagate worker stopped")

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        try:
            run_app(app, config, listen=roles.http, supervisor_fd=args.supervised)
        except (CannotListen, StoreUnavailable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    finally:
        if lock is not None:
            lock.release()


def _group(args: argparse.Namespace) -> Group | None:
    """The group a child of `serve --workers N` belongs to (None outside one)."""
    from bot.roles import Group

    if args.supervised is None:
        return None
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not metrics_dir:
        raise CommandError("--supervised is for the processes `wagate serve --workers N` "
                         "starts")
    return Group(http_processes=args.group_size, metrics_dir=metrics_dir,
                 supervisor_pid=os.getppid(), worker_id=args.worker_id, index=args.group_index)


def _supervise(args: argparse.Namespace, config: Config) -> int:
    """`serve --workers N`: the supervisor, which opens no store itself."""
    from bot.processes import Supervisor
    from bot.store.lock import StoreInUse, lock_for
    from bot.web.server import CannotListen, check_can_listen

    count = args.workers
    if count < 1 or args.supervised is not None:
        print("error: --workers takes a number of processes, 1 or more", file=sys.stderr)
        return 2
    if count > 1 and config.storage.url.startswith("sqlite:"):
        print(f"error: --workers {count} needs PostgreSQL: SQLite allows one process per "
              f"file ({config.storage.sqlite_path}); use --workers 1, or [storage] url = "
              '"postgresql://..."', file=sys.stderr)
        return 2
    try:
        check_can_listen(config.server.host, config.server.port)
        lock = lock_for(config.storage)
    except (CannotListen, StoreInUse) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        supervisor = Supervisor(config, count, ["--log-level", args.log_level,
                                                "--log-format", args.log_format],
                                keep_fds=(lock.fd,) if lock else ())
        return asyncio.run(supervisor.run())
    finally:
        if lock is not None:
            lock.release()


def add_serve(sub: Subparsers) -> None:
    p = command(sub, "serve", "run the service",
                "wagate serve --config /etc/wagate/wagate.toml --log-format json", cmd_serve)
    common(p, client=False)
    log_options(p)
    p.add_argument("--workers", type=int, metavar="N",
                   help="run N processes sharing the port, each answering requests and "
                   "draining the queues, under a supervisor (more than 1 needs PostgreSQL); "
                   "default: one process")
    supervised(p)
    p.add_argument("--no-drainers", action="store_true", help=argparse.SUPPRESS)


def add_worker(sub: Subparsers) -> None:
    p = command(sub, "worker", "run the queue drainers alone (outbound sender, webhook "
                "deliverer), with no HTTP listener, e.g. on another host sharing the "
                "PostgreSQL database", "wagate worker --config /etc/wagate/wagate.toml",
                cmd_worker)
    common(p, client=False)
    log_options(p)
    supervised(p)
