"""`wagate deliveries`: webhook deliveries and their endpoints, through the admin API."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bot.cli.client import call
from bot.cli.common import load, show
from bot.cli.options import Subparsers, actions, command, common, limit


def _delivery_line(d: dict[str, Any]) -> str:
    last = d["last_error"] or (f"HTTP {d['last_status_code']}" if d["last_status_code"] else "")
    notes = [last] if last and d["status"] != "delivered" else []
    if d["next_attempt_at"]:  # pending: when it goes (`deliveries retry` sends it now)
        notes.append(f"next attempt {d['next_attempt_at']}")
    return (f"{d['created_at']}  {d['id']}  {d['subscriber']:<10} {d['type']:<18} "
            f"{d['status']:<9} x{d['attempts']}  {d['endpoint']['url']}"
            + "".join(f"\n    {note}" for note in notes))


def cmd_deliveries(args: argparse.Namespace) -> int:
    config = load(args)
    action = args.action
    if action == "list":
        data = call(config, "GET", "/admin/deliveries",
                    params={"status": args.status, "subscriber": args.subscriber,
                            "endpoint": args.endpoint, "limit": args.limit}, url=args.url)
        show(data, args, [_delivery_line(d) for d in data["deliveries"]])
    elif action == "show":
        data = call(config, "GET", f"/admin/deliveries/{args.id}", url=args.url)
        d = data["delivery"]
        lines = [_delivery_line(d), "payload: " + json.dumps(d["payload"], ensure_ascii=False)]
        lines += [f"  {a['at']}  {a['outcome']:<9} {a['status_code'] or '-'}  "
                  f"{a['latency_ms'] if a['latency_ms'] is not None else '-'} ms"
                  f"  {a['error'] or ''}"
                  + (f"\n      {a['response_body'][:200]}" if a["response_body"] else "")
                  for a in d["attempt_log"]]
        show(data, args, lines)
    elif action == "retry":
        data = call(config, "POST", f"/admin/deliveries/{args.id}/retry", url=args.url)
        what = ("pulled forward, due now" if data["retry"] == "pulled_forward"
                else "queued again")
        show(data, args, [f"{data['delivery']['id']}: {what}"])
    elif action == "replay":
        data = call(config, "POST", "/admin/deliveries/replay",
                    params={"since": args.since, "subscriber": args.subscriber,
                            "endpoint": args.endpoint}, url=args.url)
        show(data, args, [f"since {data['since']}: {data['replayed']} failed queued again, "
                          f"{data['pulled_forward']} pending pulled forward"])
    elif action == "endpoints":
        data = call(config, "GET", "/admin/endpoints", url=args.url)
        show(data, args, [
            f"{e['key']}  {e['subscriber']:<10} {e['status']:<8} pending {e['pending']:<4} "
            f"failed {e['failed']:<4} {e['url']}"
            + (f"\n    disabled: {e['disabled_reason']}" if e["disabled_reason"] else "")
            for e in data["endpoints"]])
    else:  # enable-endpoint
        data = call(config, "POST", f"/admin/endpoints/{args.key}/enable",
                    params={"subscriber": args.subscriber}, url=args.url)
        show(data, args, [f"endpoint {data['key']}: enabled {data['enabled']}"
                          + (" (it was not disabled)" if not data["enabled"] else "")])
    return 0


def add_deliveries(sub: Subparsers) -> None:
    p = command(sub, "deliveries", "webhook deliveries: list, show, retry, replay, "
                "endpoints, enable-endpoint", "wagate deliveries list --status failed",
                cmd_deliveries)
    common(p, client=False)
    acts = actions(p)
    q = command(acts, "list", "list deliveries, newest first",
                "wagate deliveries list --status failed --subscriber acme")
    common(q)
    q.add_argument("--status", choices=("pending", "delivered", "failed"),
                   help="only with this status")
    q.add_argument("--subscriber", help="only this subscriber's")
    q.add_argument("--endpoint", help="only this endpoint's (its key: `deliveries endpoints`)")
    limit(q, 50)
    q = command(acts, "show", "one delivery with every attempt",
                "wagate deliveries show msg_5f0c9d1e...")
    common(q)
    q.add_argument("id", help="the delivery's id (its webhook-id)")
    q = command(acts, "retry", "send one delivery now (same webhook-id): a failed one "
                "again, a pending one without waiting for its next attempt",
                "wagate deliveries retry msg_5f0c9d1e...")
    common(q)
    q.add_argument("id", help="the delivery's id (its webhook-id)")
    q = command(acts, "replay", "send now every delivery since a time that has not gone: "
                "failed ones again, pending ones pulled forward",
                "wagate deliveries replay --since 2026-11-24T08:00:00Z")
    common(q)
    q.add_argument("--since", required=True, help="ISO 8601 (2026-11-01T10:00:00Z) or epoch")
    q.add_argument("--subscriber", help="only this subscriber's")
    q.add_argument("--endpoint", help="only this endpoint's (its key)")
    q = command(acts, "endpoints", "webhook endpoints and their health",
                "wagate deliveries endpoints")
    common(q)
    q = command(acts, "enable-endpoint", "enable a disabled endpoint again",
                "wagate deliveries enable-endpoint 3f2a9c0d1e2b4a5c")
    common(q)
    q.add_argument("key", help="the endpoint's key (see `deliveries endpoints`)")
    q.add_argument("--subscriber", help="the subscriber, when two share the endpoint's URL")
