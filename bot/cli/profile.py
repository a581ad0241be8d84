"""`wagate profile`: a gateway number's business profile, shown or set."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

from bot.cli.admin import profile_state_line
from bot.cli.client import call
from bot.cli.common import CommandError, load, show
from bot.cli.options import Subparsers, actions, command, common


def cmd_profile(args: argparse.Namespace) -> int:
    config = load(args)
    path = f"/admin/instances/{args.instance}/profile"
    if args.action == "show":
        data = call(config, "GET", path, url=args.url)
    else:
        body: dict[str, Any] = {k: v for k, v in (
            ("about", args.about), ("description", args.description), ("email", args.email),
            ("websites", args.website)) if v is not None}
        if args.picture:
            try:
                body["picture"] = base64.b64encode(Path(args.picture).read_bytes()).decode()
            except OSError as exc:
                raise CommandError(f"cannot read {args.picture}: {exc.strerror}") from None
        data = call(config, "PUT", path, body, url=args.url)
    profile, state = data["profile"], data["state"]
    lines = [f"instance #{data['instance']} ({data['provider']}): "
             + (f"profile from {data['source']}" if profile else "no profile set")]
    if profile:
        picture = profile["picture"]
        lines += [f"  {name}: {profile[name]}" for name in ("about", "description", "email")
                  if profile[name]]
        if profile["websites"]:
            lines.append("  websites: " + " ".join(profile["websites"]))
        if picture:
            lines.append(f"  picture: {picture['type']}, {picture['bytes']} bytes")
    lines.append("  supported by the provider: " + (", ".join(data["supported_fields"])
                                                     or "nothing (not offered by its API)"))
    if state:
        lines.append("  last applied: " + profile_state_line(data["instance"], state))
    show(data, args, lines)
    return 0 if state is None or state["status"] in ("applied", "partial") else 1


def add_profile(sub: Subparsers) -> None:
    p = command(sub, "profile", "the gateway number's business profile: show, set",
                'wagate profile set 2 --about "Order updates" --picture logo.jpg', cmd_profile)
    common(p, client=False)
    acts = actions(p)
    q = command(acts, "show", "the profile in force and how its last application went",
                "wagate profile show 2")
    common(q)
    q.add_argument("instance", type=int, help="the instance (gateway number) id")
    q = command(acts, "set", "set the profile now (until the service stops; the config's "
                "[instances.profile] is the lasting one) and apply it through the provider",
                'wagate profile set 2 --about "Order updates" --website https://acme.example')
    common(q)
    q.add_argument("instance", type=int, help="the instance (gateway number) id")
    q.add_argument("--about", help="the about text (at most 139 characters)")
    q.add_argument("--description", help="the business description (at most 512 characters)")
    q.add_argument("--email", help="the contact email")
    q.add_argument("--website", action="append", help="a website (at most two; repeat)")
    q.add_argument("--picture", metavar="FILE", help="a JPEG or PNG file")
