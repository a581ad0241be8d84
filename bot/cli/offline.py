"""Tools that need no running service: init, check-config, hash-secret, migrate-store."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import TYPE_CHECKING

from bot.cli.common import CommandError, config_path, show
from bot.cli.options import Subparsers, command, json_flag

if TYPE_CHECKING:
    from bot.config import Config


def cmd_check_config(args: argparse.Namespace) -> int:
    """The same validation as a reload, offline, with the same messages."""
    from bot.config import ConfigError
    from bot.locales import LocaleError
    from bot.runtime import load_snapshot

    path = args.path or config_path(args)
    try:
        snap = load_snapshot(path)
    except (ConfigError, LocaleError) as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c = snap.config
    notes = _profile_notes(c) + [
        f"instance {inst.id}: owner {inst.owner!r} is not in this file; the number is shared "
        "until a managed subscriber of that id is created (/admin/subscribers)"
        for inst in c.instances.values() if inst.owner_missing]
    data = {"ok": True, "path": path, "instances": len(c.instances),
            "subscribers": len(c.subscribers), "plans": len(c.plans),
            "locales": sorted(snap.locales.locales), "notes": notes}
    show(data, args, [f"{path}: OK — {len(c.instances)} instance(s), "
                      f"{len(c.subscribers)} subscriber(s), {len(c.plans)} plan(s), "
                      f"{len(snap.locales.locales)} locale(s)"]
         + [f"note: {n}" for n in notes])
    return 0


def _profile_notes(config: Config) -> list[str]:
    """What a configured profile will not do, said plainly (never an error)."""
    from bot.profile import lost_fields
    from bot.providers.registry import PROVIDERS

    by_name = {p.name: p for p in PROVIDERS}
    notes = []
    for inst in config.instances.values():
        provider = by_name[inst.provider]
        if inst.profile is None:
            continue
        if provider.make_profiler is None:
            notes.append(f"instance {inst.id}: provider {inst.provider} cannot set the business "
                         "profile (its API does not offer it); [instances.profile] is not applied")
        elif lost := lost_fields(provider, inst.profile):
            notes.append(f"instance {inst.id}: provider {inst.provider} cannot set "
                         f"{', '.join(lost)}; those profile fields are not applied")
    return notes


def cmd_hash_secret(args: argparse.Namespace) -> int:
    from bot.config import hash_secret

    secret = args.secret
    if secret is None:
        secret = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else \
            getpass.getpass("secret: ")
    if not secret:
        print("error: empty secret", file=sys.stderr)
        return 2
    digest = hash_secret(secret)
    show({"secret_sha256": digest}, args, [f'secret_sha256 = "{digest}"'])
    return 0


def cmd_migrate_store(args: argparse.Namespace) -> int:
    """Copy a SQLite store into an empty PostgreSQL one (see bot/store/migrate.py)."""
    from bot.config import postgres_driver_missing

    if missing := postgres_driver_missing():
        print(f"error: {missing}", file=sys.stderr)
        return 1
    from bot.store.migrate import NOT_COPIED, MigrationRefused, migrate_store

    def progress(line: str) -> None:
        print(f"copying... {line}", file=sys.stderr, flush=True)

    # Progress for a person at a terminal; a refusal stays the one line.
    shown = sys.stderr.isatty() and not args.json
    try:
        report = asyncio.run(migrate_store(args.source, args.target, dry_run=args.dry_run,
                                           progress=progress if shown else None))
    except MigrationRefused as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = {"ok": True, "dry_run": report.dry_run, "tables": report.counts,
            "claims_cleared": report.claims, "not_copied": list(NOT_COPIED)}
    show(data, args, report.lines(args.source, args.target))
    return 0


def add_migrate_store(sub: Subparsers) -> None:
    p = command(sub, "migrate-store", "copy a SQLite store (registrations, groups, messages, "
                "queues, deliveries, usage) into an empty PostgreSQL database, in one "
                "transaction; stop wagate on the SQLite file first",
                "wagate migrate-store --from sqlite:///var/lib/wagate/wagate.db \\\n"
                "      --to postgresql://wagate@db.internal:5432/wagate", cmd_migrate_store)
    p.add_argument("--from", dest="source", required=True, metavar="sqlite:///PATH",
                   help="the SQLite store (opened read-only; refused while a wagate uses it)")
    p.add_argument("--to", dest="target", required=True, metavar="postgresql://...",
                   help="the PostgreSQL store; it must hold no data (tables are created)")
    p.add_argument("--dry-run", action="store_true",
                   help="check and count what would be copied; write nothing")
    json_flag(p)


def add_check_config(sub: Subparsers) -> None:
    p = command(sub, "check-config", "validate a config file and its locales offline",
                "wagate check-config /etc/wagate/wagate.toml", cmd_check_config)
    p.add_argument("path", nargs="?", help="the file (default: --config, $WAGATE_CONFIG, "
                   "else ./wagate.toml, else ./config.example.toml)")
    p.add_argument("--config", default=argparse.SUPPRESS, metavar="PATH",
                   help="the same as PATH")
    json_flag(p)


def add_hash_secret(sub: Subparsers) -> None:
    p = command(sub, "hash-secret", "print secret_sha256 for a subscriber secret",
                "wagate hash-secret < secret.txt", cmd_hash_secret)
    p.add_argument("secret", nargs="?", help="the secret (read from stdin when absent)")
    json_flag(p)


def add_init(sub: Subparsers) -> None:
    p = command(sub, "init", "write a starter wagate.toml in the current folder: the sandbox "
                "provider, SQLite in ./wagate.db, a new admin token (printed once)",
                "wagate init && wagate serve", cmd_init)
    p.add_argument("--force", action="store_true", help="overwrite an existing wagate.toml")


def cmd_init(args: argparse.Namespace) -> int:
    """The example config with secrets of its own: the README's tour works on it."""
    import base64
    import secrets
    from pathlib import Path

    from bot.cli.common import STARTER_CONFIG
    from bot.shipped_files import example_config

    target = Path(STARTER_CONFIG)
    if target.exists() and not args.force:
        raise CommandError(f"{target.resolve()} exists; pass --force to overwrite it")
    admin_token = secrets.token_urlsafe(24)
    example = example_config().read_text(encoding="utf-8")
    body = example[example.index("\n\n") + 2:]  # the example's header speaks of `make run`
    text = ("# wagate — written by `wagate init`: the built-in sandbox provider, SQLite in\n"
            "# ./wagate.db, one shared number. Every key is described in the configuration\n"
            "# page of the documentation (docs/operations/configuration.md).\n\n" + body)
    replacements = {
        'token = "change-me-admin-token"': f'token = "{admin_token}"',
        'secret = "acme-secret-change-me"': f'secret = "{secrets.token_urlsafe(24)}"',
        'secret = "whsec_d2FnYXRlLWV4YW1wbGUtc2lnbmluZy1rZXktMzJieXQ="':
            f'secret = "whsec_{base64.b64encode(secrets.token_bytes(32)).decode()}"',
    }
    for old, new in replacements.items():
        if old not in text:  # the example changed: say so rather than ship its secret
            raise CommandError(f"the example config no longer holds {old!r}")
        text = text.replace(old, new)
    target.write_text(text, encoding="utf-8")
    target.chmod(0o600)  # it holds the admin token
    print(f"wrote {target.resolve()}\n"
          f"admin token: {admin_token}   (shown once; it is in the file's [admin] table)\n"
          "next: wagate serve   then, from another terminal:\n"
          '  wagate simulate --from +34600000001 "Hola"\n'
          "  wagate outbox")
    return 0
