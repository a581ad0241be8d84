"""The config file's side of managed subscribers: `self_service`, and an
instance owner the file does not list (a managed subscriber, maybe)."""

from __future__ import annotations

from pathlib import Path

from bot.config.load import parse_config
from tests.conftest import ROOT
from tests.test_cli import wagate

EXAMPLE = (ROOT / "config.example.toml").read_text()


def test_check_config_says_a_number_is_shared_until_its_owner_exists(tmp_path: Path) -> None:
    path = tmp_path / "wagate.toml"
    path.write_text(EXAMPLE.replace('owner = "shared"', 'owner = "zeta"', 1))
    assert 'owner = "zeta"' in path.read_text()
    out = wagate("check-config", str(path)).stdout
    assert "OK" in out
    assert ("owner 'zeta' is not in this file; the number is shared until a managed "
            "subscriber of that id is created") in out


def test_self_service_is_read_and_defaults_to_off() -> None:
    plain = parse_config(EXAMPLE)
    assert not any(s.self_service for s in plain.subscribers.values())
    assert all(s.managed_by == "config" for s in plain.subscribers.values())
    on = parse_config(EXAMPLE.replace('[[subscribers]]\n', '[[subscribers]]\nself_service = true\n',
                                      1))
    assert next(iter(on.subscribers.values())).self_service is True
