"""`make reliability`, small form: the forgery, fuzz, guessing and log-forging
suites against the real service (a `wagate serve` subprocess with local Graph
and webhook peers), and the runner's own contract: one table, exit 1 when a
target is not met."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reliability import forgery, fuzz, guessing, logforge
from reliability.common import ROOT, Row, table


def not_met(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.target and not r.met]


@pytest.mark.slow(5)  # a real service and its peers
async def test_forgery_small_form(tmp_path: Path) -> None:
    rows = await forgery.run(True, tmp_path)
    assert len([r for r in rows if r.target]) >= 6, table(rows)
    assert not_met(rows) == [], table(rows)


@pytest.mark.slow(30)  # a real service and its peers
async def test_fuzz_small_form(tmp_path: Path) -> None:
    rows = await fuzz.run(True, tmp_path)
    assert len([r for r in rows if r.target]) >= 7, table(rows)
    assert not_met(rows) == [], table(rows)


@pytest.mark.slow(15)  # a real service and its peers
async def test_guessing_small_form(tmp_path: Path) -> None:
    rows = await guessing.run(True, tmp_path)
    assert len([r for r in rows if r.target]) >= 9, table(rows)
    assert not_met(rows) == [], table(rows)


@pytest.mark.slow(15)  # a real service and its peers
async def test_logforge_small_form(tmp_path: Path) -> None:
    rows = await logforge.run(True, tmp_path)
    assert len([r for r in rows if r.target]) >= 7, table(rows)
    assert not_met(rows) == [], table(rows)


FAKE_SUITES = {
    "met.py": """
        from reliability.common import Row

        async def run(small, workdir):
            assert workdir.is_dir()
            return [Row(suite="met", measure="the small flag", figure=str(small), target="True",
                        met=small),
                    Row(suite="met", measure="a reported figure", figure="42")]
    """,
    "notmet.py": """
        from reliability.common import Row

        async def run(small, workdir):
            return [Row(suite="notmet", measure="accepted forgeries", figure="3", target="0",
                        met=False)]
    """,
    "crashes.py": """
        async def run(small, workdir):
            raise RuntimeError("the peer did not start")
    """,
}


def run_runner(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    package = tmp_path / "fakesuites"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    for name, source in FAKE_SUITES.items():
        (package / name).write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "reliability", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def table_rows(stdout: str) -> list[str]:
    """The lines of the table printed at the end, below its header."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("suite ") and "| measure"
                  in line)
    return lines[header + 2:]


def test_runner_passes_when_every_target_is_met(tmp_path: Path) -> None:
    done = run_runner(tmp_path, "--small", "fakesuites.met")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = table_rows(done.stdout)
    assert any("the small flag" in line and line.split(" | ")[-1].strip() == "met"
               for line in lines), done.stdout
    assert any("a reported figure" in line and line.rstrip().endswith("reported")
               for line in lines), done.stdout


def test_runner_fails_on_a_row_not_met_a_missing_or_a_crashing_suite(tmp_path: Path) -> None:
    for suites, shows in [(["fakesuites.met", "fakesuites.notmet"], "accepted forgeries"),
                          (["fakesuites.met", "nosuchsuite"],
                           "reliability/nosuchsuite.py does not exist"),
                          (["fakesuites.crashes"], "failed: RuntimeError: the peer did not start")]:
        done = run_runner(tmp_path, "--small", *suites)
        assert done.returncode == 1, done.stdout + done.stderr
        lines = table_rows(done.stdout)
        row = next(line for line in lines if shows in line)
        assert row.rstrip().endswith("NOT MET"), done.stdout
        # The rows that were met are still in the table.
        assert any("the small flag" in line for line in lines) == ("fakesuites.met" in suites)
