"""`make test` spends its CPU on the tests: bytecode cached (also where the
environment says PYTHONDONTWRITEBYTECODE) and no unused pytest plugins loaded
in each worker (issue 23, item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

from tests.conftest import ROOT


def test_make_test_caches_bytecode_whatever_the_environment_says() -> None:
    dry = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=60)
    [pytest_line] = [line for line in dry.stdout.splitlines() if "-m pytest" in line]
    assert pytest_line.startswith("env -u PYTHONDONTWRITEBYTECODE "), pytest_line


def test_unused_plugins_stay_unloaded() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"]["addopts"]
    assert "-p no:schemathesis" in options and "-p no:hypothesispytest" in options
    loaded = subprocess.run([sys.executable, "-m", "pytest", "--trace-config", "--co", "-q",
                             "tests/test_make_test.py"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120).stdout
    assert "schemathesis.pytest" not in loaded and "_hypothesis_pytestplugin" not in loaded
