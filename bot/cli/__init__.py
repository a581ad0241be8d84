"""The `wagate` command: serve, and the admin's tools over the admin API.

One module per group of commands: `run` (serve, worker), `sandbox` (simulate,
send, outbox), `admin` (registrations, messages, reload, status), `profile`,
`deliveries`, `subscribers` (subscribers, audit), `offline` (init, migrate-store,
check-config, hash-secret); `parser`
assembles them into one `build_parser()`. Importing this package starts
nothing: each command imports what it needs when it runs.
"""

from __future__ import annotations

from bot.cli.common import CommandError
from bot.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:  # one line on stderr, exit 1; never a traceback
        raise SystemExit(f"error: {exc}") from None
