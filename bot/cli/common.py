"""What every command shares: which config file, loading it, printing the result."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Config

# Read from the working directory when neither --config nor WAGATE_CONFIG says:
# the file `wagate init` writes, else a checkout's example.
STARTER_CONFIG = "wagate.toml"
DEFAULT_CONFIG = "config.example.toml"


class CommandError(Exception):
    """A command cannot go on: `main` prints `error: <message>` and exits 1."""


def config_given(args: argparse.Namespace) -> bool:
    """Whether --config or $WAGATE_CONFIG names the file (else the default)."""
    return bool(getattr(args, "config", None) or os.environ.get("WAGATE_CONFIG"))


def config_path(args: argparse.Namespace) -> str:
    """--config (before or after the command), else $WAGATE_CONFIG, else
    ./wagate.toml, else ./config.example.toml; a file that is not there is a
    clear error."""
    given = getattr(args, "config", None)
    from_env = os.environ.get("WAGATE_CONFIG")
    path = given or from_env
    if path is None:
        for default in (STARTER_CONFIG, DEFAULT_CONFIG):
            if Path(default).is_file():
                return default
        raise CommandError(f"no config file: looked for {Path.cwd() / STARTER_CONFIG} and "
                           f"{DEFAULT_CONFIG} (the defaults); run `wagate init` to write a "
                           "starter one, or pass --config PATH or set WAGATE_CONFIG")
    if Path(path).is_file():
        return path
    where = "(from --config)" if given else "(from WAGATE_CONFIG)"
    raise CommandError(f"config file not found: {path} {where}")


def load(args: argparse.Namespace) -> Config:
    """The config the command names; an invalid one exits 2 with the reason."""
    from bot.config import ConfigError
    from bot.config.load import load_config

    try:
        return load_config(config_path(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def show(data: Any, args: argparse.Namespace, lines: list[str]) -> None:
    """`data` as JSON with --json, else `lines` for people."""
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print("\n".join(lines) if lines else "(nothing)")
