"""Trying the service out: a user writing to a sandbox number (`simulate`), a
subscriber sending (`send`), and what the sandbox numbers sent (`outbox`)."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING, Any

from bot.cli.client import call
from bot.cli.common import CommandError, load, show
from bot.cli.options import Subparsers, command, common, limit

if TYPE_CHECKING:
    from bot.config import Config


def cmd_simulate(args: argparse.Namespace) -> int:
    config = load(args)
    if args.status:
        return _simulate_status(config, args)
    if args.message or args.error_code is not None or args.error_title:
        raise CommandError("--message, --error-code and --error-title go with --status")
    if not args.sender or args.text is None:
        raise CommandError("say who writes what: --from NUMBER TEXT "
                           "(or --status STATUS --message ID)")
    body: dict[str, Any] = {"instance": args.instance, "from": args.sender, "text": args.text}
    if args.name:
        body["name"] = args.name
    if args.id:
        body["id"] = args.id
    if args.group_id:
        body["group"] = {"id": args.group_id, "name": args.group_name or args.group_id}
    data = call(config, "POST", "/sandbox/inbound", body, url=args.url)
    show(data, args, [f"delivered inbound message {data['id']}"
                      + (" (duplicate, ignored)" if data.get("duplicate") else "")])
    return 0


def _simulate_status(config: Config, args: argparse.Namespace) -> int:
    """A provider's status for a sandbox message (POST /sandbox/status)."""
    if not args.message:
        raise CommandError("--status needs --message ID (from `wagate send` or "
                           "`wagate outbox --json`)")
    if args.sender or args.text is not None:
        raise CommandError("--status reports on a sent message: no --from or TEXT")
    body: dict[str, Any] = {"id": args.message, "status": args.status}
    if args.error_code is not None or args.error_title:
        body["error"] = {"code": args.error_code, "title": args.error_title}
    data = call(config, "POST", "/sandbox/status", body, url=args.url)
    status = data["message"]["status"]
    show(data, args, [f"message {args.message}: {status}" + (
        "" if data["applied"] else f" (unchanged: {args.status} does not move it on)")])
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    """A text message through the service's own send API, as a subscriber."""
    config = load(args)
    client_id, secret = _credentials(config, args)
    headers = {"X-WM-CLIENT-ID": client_id, "X-WM-CLIENT-SECRET": secret}
    data = call(config, "POST", f"/v3/whatsapp/single/text/message/{args.instance}",
                {"number": args.to, "message": args.text}, url=args.url, headers=headers)
    if args.wait:
        data = _wait_sent(config, args, data["id"], headers)
    show(data, args, [f"{data['id']}  {data['status']}"])
    return 0


def _wait_sent(config: Config, args: argparse.Namespace, message_id: str,
               headers: dict[str, str]) -> Any:
    """The message as the send API shows it once it left the queue (at most 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        data = call(config, "GET", f"/v3/whatsapp/messages/{message_id}", url=args.url,
                    headers=headers)
        if data["status"] != "queued" or time.monotonic() > deadline:
            return data
        time.sleep(0.1)


def _credentials(config: Config, args: argparse.Namespace) -> tuple[str, str]:
    """--client-id/--client-secret, else $WAGATE_CLIENT_ID/$WAGATE_CLIENT_SECRET,
    else a subscriber whose secret the config file holds (`secret`, or
    `secret_env` set here): the one with that client id, or the first that may
    use the instance. The parsed config keeps only hashes: the file is read."""
    import tomllib

    client_id = args.client_id or os.environ.get("WAGATE_CLIENT_ID")
    secret = args.client_secret or os.environ.get("WAGATE_CLIENT_SECRET")
    if client_id and secret:
        return client_id, secret
    assert config.path is not None  # loaded from a file
    instance = config.instances.get(args.instance)
    with open(config.path, "rb") as fh:
        tables = tomllib.load(fh).get("subscribers", [])
    for table in tables if isinstance(tables, list) else []:
        sub = config.subscribers.get(table.get("id"))
        found = table.get("secret") or os.environ.get(table.get("secret_env") or "")
        if sub is None or not isinstance(found, str) or not found:
            continue
        if client_id and sub.client_id == client_id:
            return client_id, found
        if not client_id and (args.instance in sub.instances
                              or (instance is not None and instance.owner == sub.id)):
            return sub.client_id, found
    wanted = f"client id {client_id}" if client_id else f"instance {args.instance}"
    raise CommandError(f"no credentials: pass --client-id and --client-secret (or set "
                       f"WAGATE_CLIENT_ID and WAGATE_CLIENT_SECRET); {config.path} holds no "
                       f"subscriber secret for {wanted}")


def cmd_outbox(args: argparse.Namespace) -> int:
    config = load(args)
    data = call(config, "GET", "/sandbox/outbox",
                params={"to": args.to, "instance": args.instance, "limit": args.limit},
                url=args.url)
    lines = []
    for m in data["messages"]:
        dest = m["to"] or f"group {m['group']['name'] or m['group']['id']}"
        body = m["text"] or (f"[{m['type']}] {m['filename'] or ''} {m['caption'] or ''}")
        lines.append(f"{m['created_at']}  #{m['instance']} -> {dest}  [{m['status']}]\n"
                     f"    {body}")
    show(data, args, lines)
    return 0


def add_simulate(sub: Subparsers) -> None:
    from bot.events import STATUSES

    p = command(sub, "simulate", "be a user writing to a sandbox number, or a provider "
                "reporting a sent message's status",
                'wagate simulate --from +34600000001 "Hola"\n'
                "  wagate simulate --status delivered --message 0b8f5f4e-...", cmd_simulate)
    common(p)
    p.add_argument("--instance", type=int, default=1,
                   help="the sandbox instance written to (default 1)")
    p.add_argument("--from", dest="sender", help="the user's number, e.g. +34600000001")
    p.add_argument("--name", help="the user's profile name")
    p.add_argument("--id", help="provider message id (generated when absent)")
    p.add_argument("--group-id", help="say it in this group")
    p.add_argument("--group-name", help="the group's name")
    p.add_argument("--status", choices=STATUSES,
                   help="instead: report this status for the sent message --message, "
                   "as a provider would (webhooks included)")
    p.add_argument("--message", metavar="ID",
                   help="with --status: the message's id (from `wagate send` or the outbox)")
    p.add_argument("--error-code", type=int, help="with --status failed: the error code")
    p.add_argument("--error-title", help="with --status failed: the error's title")
    p.add_argument("text", nargs="?", help="what the user writes")


def add_send(sub: Subparsers) -> None:
    p = command(sub, "send", "send a text to a registered user through the service's own "
                "send API, as a subscriber (a quick test)",
                'wagate send --to +34600000001 "Your order has shipped (y)"', cmd_send)
    common(p)
    p.add_argument("--to", required=True, help="the recipient, with country code; it must "
                   "have said Hi to the instance")
    p.add_argument("--instance", type=int, default=1, help="the instance sent from (default 1)")
    p.add_argument("--client-id", help="the subscriber's client id (default: "
                   "$WAGATE_CLIENT_ID, else the first subscriber whose secret is in the "
                   "config file and who may use the instance)")
    p.add_argument("--client-secret", help="its secret (default: $WAGATE_CLIENT_SECRET, "
                   "else from the config file; prefer the variable: arguments show in ps)")
    p.add_argument("--wait", action="store_true",
                   help="wait (at most 10 s) until the message has left the queue")
    p.add_argument("text", help="the message (emoji shortcuts such as (y) are converted)")


def add_outbox(sub: Subparsers) -> None:
    p = command(sub, "outbox", "the latest messages sent on sandbox numbers, oldest first",
                "wagate outbox --to +34600000001", cmd_outbox)
    common(p)
    p.add_argument("--to", help="only those to this number")
    p.add_argument("--instance", type=int, help="only those from this instance")
    limit(p, 20)
