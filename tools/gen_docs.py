"""The documentation's parts generated from the code, so they cannot drift.

A page holds a generated part between two markers:

    <!-- generated:cli (python -m tools.gen_docs writes this part; do not edit it) -->
    ...
    <!-- /generated:cli -->

`python -m tools.gen_docs` (run by `make docs`) rewrites every such part from
the code; `--check` writes nothing and exits 1 naming the stale pages
(tests/test_docs.py fails on a stale one too).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(?P<open><!-- generated:(?P<name>[\w-]+) [^\n]*-->\n)(?P<body>.*?)"
                   r"(?P<close><!-- /generated:(?P=name) -->)", re.DOTALL)


def emoji_table() -> str:
    from bot.content import EMOJI_SHORTCUTS

    by_emoji: dict[str, list[str]] = {}
    for code, emoji in EMOJI_SHORTCUTS.items():
        by_emoji.setdefault(emoji, []).append(code)
    rows = ["| you write | the user sees |", "|---|---|"]
    rows += [f"| {', '.join('`' + c.replace('|', chr(92) + '|') + '`' for c in codes)} | "
             f"{emoji} |" for emoji, codes in by_emoji.items()]
    return "\n".join(rows) + "\n"


def _commands(parser: argparse.ArgumentParser, prefix: str
              ) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(`wagate deliveries list`, its help, its parser), for every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", helps.get(name, ""), sub
                yield from _commands(sub, f"{prefix} {name}")


def _option(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """`--log-format {text,json}`, as `--help` writes it."""
    written = parser._get_formatter()._format_action_invocation(action)
    return f"`{written}`" + (" (required)" if action.required and action.option_strings else "")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def cli_reference() -> str:
    from bot.cli import build_parser

    # Usage lines wrap at the terminal's width: fix it, so the page does not
    # depend on who generated it.
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "90"
    try:
        parser = build_parser()
        out = ["```", parser.format_help().strip(), "```", ""]
        for name, help_text, sub in _commands(parser, "wagate"):
            out += [f"### `{name}`", "", _cell(help_text[:1].upper() + help_text[1:]) + ".",
                    "", "```", sub.format_usage().strip(), "```", ""]
            options = [a for a in sub._actions
                       if a.help != argparse.SUPPRESS and "-h" not in a.option_strings
                       and not isinstance(a, argparse._SubParsersAction)]
            if options:
                out += ["| option | meaning |", "|---|---|"]
                out += [f"| {_option(sub, a)} | {_cell(a.help or '')} |" for a in options]
                out.append("")
            if sub.epilog:
                out += ["```", sub.epilog.strip(), "```", ""]
        return "\n".join(out)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def config_reference() -> str:
    from tools.config_reference import reference

    return "\n".join(reference()) + "\n"


# What a route is for when /openapi.json has no summary for it (the pages, and
# the webhooks providers call) and its handler no docstring: by path prefix.
AREAS = (
    ("/ui/static/", "the dashboard's stylesheet and script"),
    ("/ui", "a page of the [dashboard](dashboard.md#dashboard) (admin token)"),
    ("/portal", "a page of the [portal](dashboard.md#portal) (a subscriber's credentials)"),
    ("/docs", "Swagger UI for `/openapi.json`, and its files"),
    ("/webhooks/meta", "Meta's webhook: the verify handshake (GET) and signed events (POST) "
     "([Meta](providers/meta.md))"),
    ("/webhooks/twilio", "Twilio's signed callbacks: messages and statuses "
     "([Twilio](providers/twilio.md))"),
    ("/webhooks/waha", "WAHA's signed events ([WAHA](providers/waha.md))"),
    ("/media/", "a message's image or document, fetched by Twilio through a signed URL "
     "([Twilio](providers/twilio.md))"),
)


def app_routes() -> list[tuple[str, str, str]]:
    """(method, path template, what it does) for every route of the app, HEAD aside:
    the summary /openapi.json gives it, else its handler's first line, else its area's."""
    import inspect

    from bot.app import create_app
    from bot.config.load import load_config
    from bot.web.openapi import build_document

    app = create_app(load_config(ROOT / "config.example.toml", env={}))
    paths = build_document()["paths"]
    found: dict[tuple[str, str], str] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        summary = paths.get(path, {}).get(route.method.lower(), {}).get("summary")
        if not summary:
            doc = inspect.getdoc(route.handler) or ""
            summary = doc.split("\n\n", 1)[0] or next(
                (what for prefix, what in AREAS if path.startswith(prefix)), "")
        found[(route.method, path)] = " ".join(summary.split())
    return sorted(((m, p, s) for (m, p), s in found.items()), key=lambda r: (r[1], r[0]))


def routes_table() -> str:
    rows = ["| method | path | what |", "|---|---|---|"]
    rows += [f"| {m} | `{p}` | {_cell(s)} |" for m, p, s in app_routes()]
    return "\n".join(rows) + "\n"


def error_table() -> str:
    """Every error the service answers with, from its catalog."""
    from bot.web.catalog import Error

    rows = ["| status | `error` | meaning |", "|---|---|---|"]
    rows += [f"| {e.status} | `{e.slug}` | {_cell(e.summary)} |"
             for e in sorted(Error, key=lambda e: (e.status, e.slug))]
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "emoji": emoji_table,
    "cli": cli_reference,
    "config": config_reference,
    "routes": routes_table,
    "errors": error_table,
}


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def regenerated(text: str) -> str:
    """The page's text with every generated part written anew."""
    def write(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise SystemExit(f"unknown generated part {name!r} (known: {', '.join(GENERATORS)})")
        return match["open"] + "\n" + GENERATORS[name]().strip("\n") + "\n\n" + match["close"]
    return BLOCK.sub(write, text)


def stale() -> list[Path]:
    """The pages whose generated parts differ from what the code gives now."""
    return [p for p in pages() if (text := p.read_text(encoding="utf-8")) != regenerated(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gen_docs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a generated part is stale")
    args = parser.parse_args(argv)
    if args.check:
        old = stale()
        for path in old:
            print(f"stale: {path.relative_to(ROOT)} (run `make docs` or "
                  "`python -m tools.gen_docs`)", file=sys.stderr)
        return 1 if old else 0
    for path in pages():
        text = path.read_text(encoding="utf-8")
        new = regenerated(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
