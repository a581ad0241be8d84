"""The README and the documentation site under docs/: a README a newcomer reads
in ten minutes, pages that stand alone, links and anchors that lead somewhere,
and the lists in the pages that agree with the code."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from bot.app import create_app
from bot.cli import build_parser
from bot.config.load import load_config
from bot.content import EMOJI_SHORTCUTS
from bot.web.catalog import Error
from tests.conftest import ROOT
from tools import config_reference, gen_docs

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(markdown: str) -> str:
    """The text outside fenced code blocks and inline code, where links live."""
    markdown = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", markdown)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation gone, spaces to dashes.
    (The site's own anchors are checked by `mkdocs build --strict`.)"""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    kept = "".join(c for c in heading.lower()
                   if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+?)#*$", prose(text_of(path)), re.MULTILINE):
        slug = anchor(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def section(path: Path, heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    text = text_of(path)
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    end = re.search(rf"^#{{1,{len(level)}}} ", text[start:], re.MULTILINE)
    return text[start:start + end.start()] if end else text[start:]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `mkdocs build --strict` builds it: a broken link or anchor, a
    page missing from the navigation or a missing page fails the build."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_site_builds_strict(site: Path) -> None:
    built = {p.relative_to(site).parent.as_posix() for p in site.rglob("index.html")}
    for page in PAGES:
        name = page.relative_to(DOCS).with_suffix("").as_posix()
        name = "." if name == "index" else name.removesuffix("/index")
        assert name in built, name


def test_readme_is_read_in_ten_minutes() -> None:
    assert len(text_of(README).splitlines()) <= 400


def test_refers_to_nothing_users_cannot_read() -> None:
    for path in [README, *PAGES]:
        text = text_of(path)
        assert "SPEC" not in text, path
        assert not re.search(r"\bthe spec\b", text, re.IGNORECASE), path


def test_every_relative_link_and_anchor_resolves() -> None:
    checked = 0
    for path in [README, *PAGES]:
        for target in LINK.findall(prose(text_of(path))):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, fragment = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}: {target}"
            assert linked.exists(), f"{where}: no such file"
            assert linked.is_relative_to(ROOT), f"{where}: outside the repository"
            if fragment:
                assert linked.suffix == ".md", f"{where}: an anchor in a file that has none"
                assert fragment in anchors_of(linked), f"{where}: no such heading"
            checked += 1
    assert checked >= 50  # the check found the links it is meant to check


def test_the_readme_leads_to_every_page() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for target in LINK.findall(prose(text_of(README)))
              if target.startswith("docs/")}
    pages = {p.resolve() for p in PAGES if p.name != "index.md" or p.parent != DOCS}
    assert sorted(str(p.relative_to(ROOT)) for p in pages - linked) == []


def test_every_emoji_shortcut_is_listed() -> None:
    table = section(DOCS / "send-api.md", "## Emoji shortcuts")
    rows = dict(re.findall(r"^\| (.+?) \| (\S+) \|$", table, re.MULTILINE))
    listed = {code.replace("\\|", "|"): emoji for codes, emoji in rows.items()
              for code in re.findall(r"`([^`]+)`", codes)}
    assert listed == EMOJI_SHORTCUTS


def test_every_cli_command_is_on_the_cli_page() -> None:
    page = text_of(DOCS / "operations" / "cli.md")
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert len(commands) >= 10
    for name in commands:
        assert f"`wagate {name}" in page, name
    for option in ("--version", "--config", "WAGATE_CONFIG", "WAGATE_CLIENT_ID"):
        assert option in page, option


def test_generated_parts_are_current() -> None:
    """The CLI reference, the configuration reference and the emoji table are
    written from the code by `python -m tools.gen_docs` (`make docs`)."""
    parts = {m["name"] for p in PAGES for m in gen_docs.BLOCK.finditer(text_of(p))}
    assert parts == set(gen_docs.GENERATORS)
    assert [str(p.relative_to(ROOT)) for p in gen_docs.stale()] == [], \
        "run `make docs` (or python -m tools.gen_docs) and commit the pages"


def site_text(site: Path, page: str = "") -> str:
    """What the built site (or one page of it) says, markup aside."""
    files = [site / page / "index.html"] if page else sorted(site.rglob("*.html"))
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", f.read_text(encoding="utf-8"))
                                  for f in files))


def test_the_site_names_every_command_key_and_route(site: Path) -> None:
    text = site_text(site)
    commands = [name for name, _help, _parser in gen_docs._commands(build_parser(), "wagate")]
    assert len(commands) >= 15
    assert [name for name in commands if name not in text] == []

    configuration = site_text(site, "operations/configuration")
    keys = config_reference.read_from_code().keys
    assert len(keys) >= 15 and sum(map(len, keys.values())) >= 80
    assert [f"[{table}] {key}" for table, names in keys.items() for key in sorted(names)
            if not re.search(rf"\b{re.escape(key)}\b", configuration)] == []
    for table in keys:
        header = table.replace(".NAME", "")
        assert header in configuration, table

    app = create_app(load_config(ROOT / "config.example.toml", env={}))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None}
    assert len(routes) >= 60
    rows = set(re.findall(r"\b(GET|POST|PUT|DELETE|PATCH)\s+(/[^\s<]*)", text))
    assert sorted(routes - rows) == []


def test_the_send_api_errors_are_the_catalog_s() -> None:
    """The send API's guide names each error with its status: every pair is one
    the service answers with."""
    table = section(DOCS / "send-api.md", "## Errors")
    named = {(int(status), slug) for status, slugs in re.findall(
        r"^\| (\d{3}) \| (.+?) \|", table, re.MULTILINE)
        for slug in re.findall(r"`(\w+)`", slugs)}
    assert len(named) >= 40
    assert sorted(named - {(e.status, e.slug) for e in Error}) == []
