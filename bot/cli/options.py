"""How commands are declared: each with its help, an example, and the options
that recur across them (the same words on every command)."""

from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Callable

Subparsers = argparse._SubParsersAction  # what add_subparsers returns
Command = Callable[[argparse.Namespace], int]


def command(sub: Subparsers, name: str, help_text: str, example: str,
            func: Command | None = None) -> argparse.ArgumentParser:
    about = textwrap.fill(help_text[:1].upper() + help_text[1:] + ".", 78)
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=about, epilog="example:\n  " + example,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if func is not None:
        p.set_defaults(func=func)
    return p


def common(p: argparse.ArgumentParser, *, client: bool = True) -> None:
    # SUPPRESS: given here it wins; absent, the one before the command stands.
    p.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                   help="config file (TOML): finds the service and its admin token")
    if client:
        p.add_argument("--url", help="URL of the running service "
                       "(default: from [server] in the config)")
        json_flag(p)


def log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default=os.environ.get("WAGATE_LOG_LEVEL", "INFO"),
                   help="DEBUG, INFO, WARNING or ERROR (default: $WAGATE_LOG_LEVEL, "
                   "else INFO)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="text for people, json (one object a line) for log collectors")


def supervised(p: argparse.ArgumentParser) -> None:
    # Set by `serve --workers N` on the processes it starts, not by people.
    p.add_argument("--supervised", type=int, metavar="FD", help=argparse.SUPPRESS)
    p.add_argument("--group-size", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--group-index", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker-id", help=argparse.SUPPRESS)


def json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON for scripts")


def limit(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--limit", type=int, default=default,
                   help=f"at most this many rows (default {default})")


def actions(p: argparse.ArgumentParser) -> Subparsers:
    """The sub-commands of a command (`deliveries list`, `profile show`)."""
    return p.add_subparsers(dest="action", required=True, metavar="ACTION")
