"""`build_parser()`: the whole `wagate` command line, from each group's commands."""

from __future__ import annotations

import argparse

from bot.cli.admin import add_messages, add_registrations, add_reload, add_status
from bot.cli.deliveries import add_deliveries
from bot.cli.offline import add_check_config, add_hash_secret, add_init, add_migrate_store
from bot.cli.profile import add_profile
from bot.cli.run import add_serve, add_worker
from bot.cli.sandbox import add_outbox, add_send, add_simulate
from bot.cli.subscribers import add_audit, add_subscribers

# In the order `wagate --help` lists them.
COMMANDS = (add_init, add_serve, add_worker, add_simulate, add_send, add_outbox, add_registrations,
            add_messages, add_reload, add_status, add_subscribers, add_audit, add_deliveries,
            add_migrate_store, add_profile, add_check_config, add_hash_secret)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wagate")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wagate", description="Self-hosted WhatsApp gateway: the service and its tools.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  wagate --config /etc/wagate/wagate.toml status\n"
               "  wagate COMMAND --help   (each command's options, with an example)")
    parser.add_argument("--version", action="version", version=f"wagate {_version()}",
                        help="print the version and exit")
    parser.add_argument("--config", metavar="PATH", help="config file (TOML); also "
                        "accepted after the command (default: $WAGATE_CONFIG, else "
                        "./wagate.toml, else ./config.example.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser
