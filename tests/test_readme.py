"""The README a newcomer reads: self-contained, its contents links lead
somewhere, and its lists agree with the code (emoji shortcuts, CLI commands)."""

from __future__ import annotations

import re

from bot.cli import build_parser
from bot.content import EMOJI_SHORTCUTS
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation gone, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_refers_to_nothing_outside_the_repository() -> None:
    assert "SPEC" not in README and not re.search(r"\bthe spec\b", README, re.IGNORECASE)
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_contents_links_lead_to_headings() -> None:
    headings = {anchor(h) for h in re.findall(r"^#{2,3} (.+)$", README, re.MULTILINE)}
    links = re.findall(r"\]\(#([^)]+)\)", README)
    assert len(links) >= 10
    assert sorted(set(links) - headings) == []


def test_every_emoji_shortcut_is_listed() -> None:
    table = README.split("### Emoji shortcuts", 1)[1].split("\n\n", 2)[1]
    rows = dict(re.findall(r"^\| (.+?) \| (\S+) \|$", table, re.MULTILINE))
    listed = {code.replace("\\|", "|"): emoji for codes, emoji in rows.items()
              for code in re.findall(r"`([^`]+)`", codes)}
    assert listed == EMOJI_SHORTCUTS


def test_every_cli_command_is_in_the_cli_section() -> None:
    section = README.split("### Admin CLI", 1)[1].split("\n### ", 1)[0]
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name in commands:
        if name != "serve":  # under "Running in production"
            assert f"`wagate {name}" in section, name
    for option in ("--version", "--config", "WAGATE_CONFIG", "WAGATE_CLIENT_ID"):
        assert option in section, option
