"""The `wagate` command: serve, and the admin's tools over the admin API."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = os.environ.get("WAGATE_CONFIG", "config.example.toml")


def _load(path: str) -> Any:
    from bot.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# ------------------------------------------------------------------ serve


def setup_logging(level: str, fmt: str) -> None:
    from bot.logs import configure

    configure(level=level, fmt=fmt)


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import create_app
    from bot.locales import LocaleError
    from bot.runtime import ReloadError, reload_from_disk
    from bot.web.keys import holder_key

    setup_logging(args.log_level, args.log_format)
    # The store's thread hands results back to the event loop many times a
    # second; the default 5 ms GIL switch interval makes each hand-off wait.
    sys.setswitchinterval(float(os.environ.get("WAGATE_SWITCH_INTERVAL", "0.0005")))
    config = _load(args.config)
    try:
        app = create_app(config)
    except (LocaleError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("wagate")
    pid_file = Path(config.server.pid_file) if config.server.pid_file else None

    async def on_startup(app: web.Application) -> None:
        def reload() -> None:
            try:
                reload_from_disk(app[holder_key])
            except ReloadError:
                pass  # already logged with file, line and key
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
        if pid_file:
            pid_file.write_text(f"{os.getpid()}\n")
        log.info("wagate serving on http://%s:%d (%d instance(s))", config.server.host,
                 config.server.port, len(config.instances))

    async def on_cleanup(app: web.Application) -> None:
        if pid_file:
            pid_file.unlink(missing_ok=True)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    web.run_app(app, host=config.server.host, port=config.server.port, print=None,
                shutdown_timeout=config.server.shutdown_timeout, access_log=None)
    return 0


# ------------------------------------------------------------------ admin client


def _base_url(config: Any) -> str:
    host = config.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    return f"http://{host}:{config.server.port}"


def _call(config: Any, method: str, path: str, body: Any = None,
          params: dict[str, Any] | None = None, url: str | None = None) -> Any:
    import aiohttp

    async def go() -> Any:
        headers = {"Authorization": f"Bearer {config.admin_token}"}
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with aiohttp.ClientSession() as session, session.request(
                method, (url or _base_url(config)) + path, json=body, params=query,
                headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                message = data.get("error_message") if isinstance(data, dict) else data
                raise SystemExit(f"error: HTTP {resp.status}: {message}")
            return data

    try:
        return asyncio.run(go())
    except OSError as exc:
        raise SystemExit(f"error: cannot reach wagate at {url or _base_url(config)}: {exc}"
                         ) from None


def _print(data: Any, args: argparse.Namespace, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print("\n".join(lines) if lines else "(nothing)")


def cmd_simulate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    body: dict[str, Any] = {"instance": args.instance, "from": args.sender, "text": args.text}
    if args.name:
        body["name"] = args.name
    if args.id:
        body["id"] = args.id
    if args.group_id:
        body["group"] = {"id": args.group_id, "name": args.group_name or args.group_id}
    data = _call(config, "POST", "/sandbox/inbound", body, url=args.url)
    _print(data, args, [f"delivered inbound message {data['id']}"
                        + (" (duplicate, ignored)" if data.get("duplicate") else "")])
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    config = _load(args.config)
    data = _call(config, "GET", "/sandbox/outbox",
                 params={"to": args.to, "instance": args.instance, "limit": args.limit},
                 url=args.url)
    lines = []
    for m in data["messages"]:
        dest = m["to"] or f"group {m['group']['name'] or m['group']['id']}"
        body = m["text"] or (f"[{m['type']}] {m['filename'] or ''} {m['caption'] or ''}")
        lines.append(f"{m['created_at']}  #{m['instance']} -> {dest}  [{m['status']}]\n"
                     f"    {body}")
    _print(data, args, lines)
    return 0


def cmd_registrations(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if args.number:
        data = _call(config, "GET", f"/admin/registrations/{args.number}", url=args.url)
    else:
        data = _call(config, "GET", "/admin/registrations",
                     params={"instance": args.instance, "status": args.status,
                             "limit": args.limit}, url=args.url)
    lines = [f"#{r['instance']}  {r['number']:<16} {r['locale']:<8} {r['status']:<10} "
             f"since {r['registered_at']}" for r in data["registrations"]]
    _print(data, args, lines)
    return 0


def cmd_messages(args: argparse.Namespace) -> int:
    config = _load(args.config)
    data = _call(config, "GET", "/admin/messages",
                 params={"direction": args.direction, "number": args.number,
                         "instance": args.instance, "limit": args.limit}, url=args.url)
    lines = [f"{m['at']}  {'<-' if m['direction'] == 'in' else '->'} #{m['instance']} "
             f"{m['number'] or m['group_id']}  {m['type']}"
             f"{' [' + m['status'] + ']' if m['status'] else ''}" for m in data["messages"]]
    _print(data, args, lines)
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config.server.pid_file and Path(config.server.pid_file).exists() and not args.url:
        pid = int(Path(config.server.pid_file).read_text().strip())
        os.kill(pid, signal.SIGHUP)
        print(f"sent SIGHUP to wagate (pid {pid}); see its log for the outcome")
        return 0
    data = _call(config, "POST", "/admin/reload", url=args.url)
    print(f"reloaded (generation {data['generation']})")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from bot.locales import LocaleError
    from bot.runtime import load_snapshot

    _load(args.path)
    try:
        snap = load_snapshot(args.path)
    except LocaleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c = snap.config
    print(f"{args.path}: OK — {len(c.instances)} instance(s), {len(c.subscribers)} "
          f"subscriber(s), {len(c.plans)} plan(s), {len(snap.locales.locales)} locale(s)")
    return 0


def cmd_hash_secret(args: argparse.Namespace) -> int:
    from bot.config import hash_secret

    secret = args.secret
    if secret is None:
        secret = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else \
            getpass.getpass("secret: ")
    if not secret:
        print("error: empty secret", file=sys.stderr)
        return 2
    print(f'secret_sha256 = "{hash_secret(secret)}"')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wagate", description="Self-hosted WhatsApp gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, client: bool = True) -> None:
        p.add_argument("--config", default=DEFAULT_CONFIG, help="config file (TOML)")
        if client:
            p.add_argument("--url", help="admin URL of the running service "
                           "(default: from [server] in the config)")
            p.add_argument("--json", action="store_true", help="print JSON for scripts")

    p = sub.add_parser("serve", help="run the service")
    common(p, client=False)
    p.add_argument("--log-level", default=os.environ.get("WAGATE_LOG_LEVEL", "INFO"))
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("simulate", help="inject an inbound message (sandbox instances)")
    common(p)
    p.add_argument("--instance", type=int, default=1)
    p.add_argument("--from", dest="sender", required=True, help="sender, e.g. +34600000001")
    p.add_argument("--name", help="profile name")
    p.add_argument("--id", help="provider message id (generated when absent)")
    p.add_argument("--group-id", help="say it in this group")
    p.add_argument("--group-name", help="the group's name")
    p.add_argument("text")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("outbox", help="list messages sent (sandbox)")
    common(p)
    p.add_argument("--to")
    p.add_argument("--instance", type=int)
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_outbox)

    p = sub.add_parser("registrations", help="list registrations, or one number's")
    common(p)
    p.add_argument("number", nargs="?")
    p.add_argument("--instance", type=int)
    p.add_argument("--status", choices=("active", "opted_out"))
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=cmd_registrations)

    p = sub.add_parser("messages", help="the message log, both directions")
    common(p)
    p.add_argument("--direction", choices=("in", "out"))
    p.add_argument("--number")
    p.add_argument("--instance", type=int)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_messages)

    p = sub.add_parser("reload", help="reload the running service's config (SIGHUP)")
    common(p)
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser("check-config", help="validate a config file and its locales")
    p.add_argument("path", nargs="?", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("hash-secret", help="print secret_sha256 for a subscriber secret")
    p.add_argument("secret", nargs="?", help="the secret (read from stdin when absent)")
    p.set_defaults(func=cmd_hash_secret)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
