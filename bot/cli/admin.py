"""The running service seen and steered through the admin API: registrations,
the message log, reload, status."""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.client import ApiRefused, ServiceUnreachable, base_url, call
from bot.cli.common import CommandError, load, show
from bot.cli.options import Subparsers, command, common, limit

if TYPE_CHECKING:
    from bot.config import Config


def _registration_line(r: dict[str, Any]) -> str:
    """Active since it registered, opted out since it opted out."""
    since = r["registered_at"] if r["status"] == "active" else r.get("opted_out_at")
    return (f"#{r['instance']}  {r['number']:<16} {r['locale']:<8} {r['status']:<10} "
            f"since {since or r['updated_at']}")


def cmd_registrations(args: argparse.Namespace) -> int:
    config = load(args)
    if args.opt_out:
        if not args.number:
            raise CommandError("--opt-out needs a number")
        data = call(config, "POST", f"/admin/registrations/{args.number}/opt-out",
                    params={"instance": args.instance}, url=args.url)
        lines = [f"opted out on {data['changed']} instance(s) "
                 f"({len(data['registrations']) - data['changed']} already opted out)"]
        lines += [_registration_line(r) for r in data["registrations"]]
        show(data, args, lines)
        return 0
    if args.number:
        data = call(config, "GET", f"/admin/registrations/{args.number}", url=args.url)
    else:
        data = call(config, "GET", "/admin/registrations",
                    params={"instance": args.instance, "status": args.status,
                            "limit": args.limit}, url=args.url)
    lines = [_registration_line(r) for r in data["registrations"]]
    show(data, args, lines)
    return 0


def cmd_messages(args: argparse.Namespace) -> int:
    config = load(args)
    data = call(config, "GET", "/admin/messages",
                params={"direction": args.direction, "number": args.number,
                        "instance": args.instance, "limit": args.limit}, url=args.url)
    show(data, args, message_lines(data["messages"]))
    return 0


def message_lines(messages: list[dict[str, Any]]) -> list[str]:
    """The message log for people: each message's line, then its text."""
    return [f"{m['at']}  {'<-' if m['direction'] == 'in' else '->'} #{m['instance']} "
            f"{m['number'] or m['group_id']}  {m['type']}"
            f"{' [' + m['status'] + ']' if m['status'] else ''}"
            + (f"\n    {m['text']}" if m["text"] else "") for m in messages]


def _sighup(config: Config, args: argparse.Namespace) -> int:
    pid_file = Path(config.server.pid_file) if config.server.pid_file else None
    if pid_file is None or not pid_file.exists():
        raise CommandError("no pid file to signal (set [server] pid_file)")
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (ValueError, OSError) as exc:
        raise CommandError(f"cannot signal the pid in {pid_file}: {exc}") from None
    show({"status": "signalled", "pid": pid}, args,
         [f"sent SIGHUP to wagate (pid {pid}); see its log for the outcome"])
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Through the admin API, which answers with the outcome (refused: exit 1 and
    the reason); SIGHUP through the pid file with --signal, or when the API cannot
    be reached."""
    config = load(args)
    if args.signal:
        return _sighup(config, args)
    try:
        data = call(config, "POST", "/admin/reload", url=args.url)
    except ServiceUnreachable:
        if config.server.pid_file and not args.url and Path(config.server.pid_file).exists():
            return _sighup(config, args)
        raise
    except ApiRefused as exc:
        if exc.status == 422:  # the new config is invalid: the old one stays
            raise CommandError(f"reload refused: {exc.message}") from None
        raise
    show(data, args, [f"reloaded (generation {data['generation']})"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    config = load(args)
    base = args.url or base_url(config)
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as resp:
            ready = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        ready = json.loads(exc.read() or b"{}")
    except OSError as exc:
        raise ServiceUnreachable(base, exc) from None
    summary = call(config, "GET", "/admin/config", url=args.url)
    data = {"ready": ready, "config": summary}
    lines = [f"{ready.get('status')}" + "".join(f"\n  - {r}" for r in ready.get("reasons", [])),
             f"config {summary['path']} (generation {summary['generation']}, "
             f"loaded {summary['loaded_at']})",
             "instances: " + ", ".join(f"#{i['id']} {i['number']} ({i['provider']})"
                                        for i in summary["instances"]),
             "subscribers: " + (", ".join(f"{s['id']} ({s['plan']})"
                                          for s in summary["subscribers"]) or "none"),
             "locales: " + " ".join(summary["locales"])]
    profiles = (ready.get("details") or {}).get("profiles") or {}
    if profiles:
        lines.append("profiles: " + ", ".join(profile_state_line(int(i), s)
                                             for i, s in profiles.items()))
    show(data, args, lines)
    return 0 if ready.get("status") == "ready" else 1


def profile_state_line(instance: int, state: dict[str, Any]) -> str:
    """How the last application of a number's business profile went, in one line."""
    applied = ", ".join(state.get("applied") or []) or "nothing"
    line = f"#{instance} {state['status']} ({applied}; from {state['source']})"
    if state.get("not_supported"):
        line += f", not supported: {', '.join(state['not_supported'])}"
    return line + (f": {state['error']}" if state.get("error") else "")


def add_registrations(sub: Subparsers) -> None:
    p = command(sub, "registrations", "list registrations, show one number's, or opt a "
                "number out", "wagate registrations +34600000001 --opt-out",
                cmd_registrations)
    common(p)
    p.add_argument("number", nargs="?", help="show (or with --opt-out, opt out) this number")
    p.add_argument("--instance", type=int, help="only on this instance")
    p.add_argument("--status", choices=("active", "opted_out"), help="only with this status")
    limit(p, 100)
    p.add_argument("--opt-out", action="store_true",
                   help="opt NUMBER out by hand (on --instance, else on every instance)")


def add_messages(sub: Subparsers) -> None:
    p = command(sub, "messages", "the latest messages, both directions, oldest first, "
                "with their text",
                "wagate messages --direction in --number +34600000001", cmd_messages)
    common(p)
    p.add_argument("--direction", choices=("in", "out"), help="only received or only sent")
    p.add_argument("--number", help="only to or from this number")
    p.add_argument("--instance", type=int, help="only on this instance")
    limit(p, 50)


def add_reload(sub: Subparsers) -> None:
    p = command(sub, "reload", "reload the running service's config and locales",
                "wagate reload --config /etc/wagate/wagate.toml", cmd_reload)
    common(p)
    p.add_argument("--signal", action="store_true",
                   help="send SIGHUP to the pid in [server] pid_file instead of the admin API")


def add_status(sub: Subparsers) -> None:
    p = command(sub, "status", "readiness and the config in force (exit 1 when not ready)",
                "wagate status --json", cmd_status)
    common(p)
