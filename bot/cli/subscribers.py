"""`wagate subscribers` (managed subscribers and their secrets) and `wagate
audit` (who changed what), through the admin API."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from bot.cli.client import call
from bot.cli.common import CommandError, load, show
from bot.cli.options import Subparsers, actions, command, common, limit

# `subscribers set` flags -> the API's fields; "-" clears a text or date field.
_FIELDS = ("plan", "since", "expires", "keyword", "email", "name")


def _line(s: dict[str, Any]) -> str:
    ends = f" until {s['expires']}" if s["expires"] else ""
    who = f"  {s['name']}" if s["name"] else ""
    return (f"{s['id']:<16} {s['state']:<11} {s['plan']:<14} {s['managed_by']:<6} "
            f"{s['client_id']}  #{','.join(map(str, s['instances'])) or '-'}{ends}{who}")


def _issued(data: dict[str, Any], what: str) -> list[str]:
    lines = [f"{what} {data['subscriber']['id']}",
             f"  CLIENT_ID  {data['client_id']}",
             f"  SECRET     {data['secret']}",
             "  (the secret is shown this once: store it now)"]
    if data["previous_secrets_until"]:
        lines.append(f"  the previous secret works until {data['previous_secrets_until']}")
    return lines


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            body[name] = None if value == "-" else value
    if getattr(args, "instances", None) is not None:
        try:
            body["instances"] = [int(i) for i in args.instances.split(",") if i.strip()]
        except ValueError:
            raise CommandError("--instances takes instance ids separated by commas "
                               "(e.g. 1,2), or \"\" for none") from None
    return body


def _path(sub_id: str, rest: str = "") -> str:
    return f"/admin/subscribers/{quote(sub_id, safe='')}{rest}"


def cmd_subscribers(args: argparse.Namespace) -> int:
    config = load(args)
    action = args.action
    if action == "list":
        data = call(config, "GET", "/admin/subscribers", url=args.url)
        show(data, args, [_line(s) for s in data["subscribers"]])
    elif action == "show":
        data = call(config, "GET", _path(args.id), url=args.url)
        lines = [_line(data)] + [f"  {key}: {data[key]}" for key in (
            "email", "keyword", "since", "self_service") if data[key] not in (None, "")]
        lines += [f"  an earlier secret works until {t}" for t in data["older_secrets_until"]]
        show(data, args, lines)
    elif action == "add":
        data = call(config, "POST", "/admin/subscribers",
                    {"id": args.id, **_fields(args)}, url=args.url)
        show(data, args, _issued(data, "created"))
    elif action == "set":
        body = _fields(args)
        if not body:
            raise CommandError("nothing to change: give --plan, --since, --expires, "
                               "--instances, --keyword, --email or --name")
        data = call(config, "PATCH", _path(args.id), body, url=args.url)
        show(data, args, [_line(data)])
    elif action in ("suspend", "resume"):
        data = call(config, "POST", _path(args.id, f"/{action}"), url=args.url)
        show(data, args, [_line(data)])
    elif action == "delete":
        data = call(config, "DELETE", _path(args.id), url=args.url)
        show(data, args, [f"deleted {data['id']}: its credentials no longer work"])
    else:  # rotate
        data = call(config, "POST", _path(args.id, "/secrets"),
                    {"overlap_hours": args.overlap_hours}, url=args.url)
        show(data, args, _issued(data, "new secret for"))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    config = load(args)
    data = call(config, "GET", "/admin/audit",
                params={"since": args.since, "actor": args.actor, "target": args.target,
                        "before": args.before, "limit": args.limit}, url=args.url)
    lines = [f"{e['at']}  {e['actor']:<20} {e['action']:<22} {e['target'] or '-':<16} "
             f"{e['address'] or ''}"
             + (f"\n    {e['details']}" if e["details"] else "") for e in data["entries"]]
    if data["next_before"] is not None:
        lines.append(f"(older: --before {data['next_before']})")
    show(data, args, lines)
    return 0


def _field_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", help="a configured plan")
    p.add_argument("--since", help="first day (YYYY-MM-DD; default today)")
    p.add_argument("--expires", help="first day it no longer works (YYYY-MM-DD; - clears)")
    p.add_argument("--instances", help="shared numbers it may send from: ids, comma-separated")
    p.add_argument("--keyword", help="its registration keyword (- clears)")
    p.add_argument("--email", help="its contact address (- clears)")
    p.add_argument("--name", help="its name, for people (- clears)")


def add_subscribers(sub: Subparsers) -> None:
    p = command(sub, "subscribers", "managed subscribers: list, show, add, set, suspend, "
                "resume, delete, rotate", "wagate subscribers add acme2 --plan enterprise "
                "--instances 1", cmd_subscribers)
    common(p, client=False)
    acts = actions(p)
    q = command(acts, "list", "every subscriber, the config file's too",
                "wagate subscribers list")
    common(q)
    q = command(acts, "show", "one subscriber", "wagate subscribers show acme2")
    common(q)
    q.add_argument("id", help="the subscriber's id")
    q = command(acts, "add", "create one: prints its CLIENT_ID and secret, once",
                "wagate subscribers add acme2 --plan enterprise --instances 1 "
                "--email ops@acme.example")
    common(q)
    q.add_argument("id", help="its id (letters, digits, _ . @ -)")
    _field_options(q)
    q = command(acts, "set", "change a managed one (a new plan keeps today's count)",
                "wagate subscribers set acme2 --plan forever_green --expires 2027-06-01")
    common(q)
    q.add_argument("id", help="the subscriber's id")
    _field_options(q)
    for name, what in (("suspend", "refuse its sends until resumed"),
                       ("resume", "let a suspended one send again"),
                       ("delete", "delete one: its credentials stop at once, its history "
                                  "stays")):
        q = command(acts, name, what, f"wagate subscribers {name} acme2")
        common(q)
        q.add_argument("id", help="the subscriber's id")
    q = command(acts, "rotate", "issue a new secret; the old one works --overlap-hours more",
                "wagate subscribers rotate acme2 --overlap-hours 0")
    common(q)
    q.add_argument("id", help="the subscriber's id")
    q.add_argument("--overlap-hours", type=float, default=24.0,
                   help="how long the old secret keeps working (default 24; 0: ends now, "
                   "for a leaked one)")


def add_audit(sub: Subparsers) -> None:
    p = command(sub, "audit", "who changed which subscriber or secret, and config reloads, "
                "newest first", "wagate audit --target acme2", cmd_audit)
    common(p)
    p.add_argument("--since", help="only from this time (ISO 8601 or epoch)")
    p.add_argument("--actor", help='only this actor: admin, config or subscriber:<id>')
    p.add_argument("--target", help="only about this subscriber")
    p.add_argument("--before", type=int, help="only before this entry (paging)")
    limit(p, 50)
