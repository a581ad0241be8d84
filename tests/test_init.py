"""`wagate init`: a starter wagate.toml in the current folder, with secrets of
its own, that the commands then find without --config."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from bot.cli import main
from bot.cli.common import config_path
from bot.config.load import load_config
from bot.shipped_files import example_config, locales_dir
from tests.conftest import ROOT


def init(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["init", *args]) == 0
    return capsys.readouterr().out.split("admin token: ")[1].split()[0]


def test_init_writes_a_valid_config_with_new_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    token = init(capsys)
    written = tmp_path / "wagate.toml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600  # it holds the admin token
    config = load_config(written, env={})
    assert config.admin_token == token and len(token) >= 32
    assert [i.provider for i in config.instances.values()] == ["sandbox"]
    assert config.storage.url == "sqlite:///./wagate.db"
    assert Path(config.locales_dir) == locales_dir()
    example = load_config(example_config(), env={})
    (sub,) = config.subscribers.values()
    (example_sub,) = example.subscribers.values()
    assert sub.secret_sha256 != example_sub.secret_sha256
    assert sub.webhooks[0].secret != example_sub.webhooks[0].secret

    with pytest.raises(SystemExit, match="exists; pass --force to overwrite it"):
        main(["init"])
    assert load_config(written, env={}).admin_token == token
    assert init(capsys, "--force") != token


def test_commands_find_wagate_toml_before_the_example(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WAGATE_CONFIG", raising=False)
    (tmp_path / "config.example.toml").write_text("")
    assert config_path(argparse.Namespace()) == "config.example.toml"
    (tmp_path / "wagate.toml").write_text("")
    assert config_path(argparse.Namespace()) == "wagate.toml"


def test_a_checkout_reads_its_own_locales_and_example() -> None:
    # The wheel's copies are tested where they live: tests/test_wheel.py.
    assert locales_dir() == ROOT / "locales"
    assert example_config() == ROOT / "config.example.toml"
    assert os.path.isdir(locales_dir() / "es")
