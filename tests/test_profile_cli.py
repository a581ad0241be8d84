"""`wagate profile` and `wagate status` against the real `wagate serve`, and
what `wagate check-config` says of profiles a provider cannot apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import base_config
from tests.send_helpers import JPEG
from tests.test_cli import Service, service, wagate  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow  # real `wagate` processes


def test_profile_set_show_and_status(service: Service, tmp_path: Path) -> None:  # noqa: F811
    picture = tmp_path / "logo.jpg"
    picture.write_bytes(JPEG)
    out = wagate("profile", "set", "1", "--config", str(service.config), "--about",
                 "Order updates", "--website", "https://acme.example", "--picture",
                 str(picture)).stdout
    assert "instance #1 (sandbox): profile from admin" in out
    assert "about: Order updates" in out and f"image/jpeg, {len(JPEG)} bytes" in out
    assert "last applied: #1 applied (about, picture, websites; from admin)" in out
    shown = wagate("profile", "show", "1", "--config", str(service.config)).stdout
    assert "websites: https://acme.example" in shown
    status = wagate("status", "--config", str(service.config)).stdout
    assert "profiles: #1 applied (about, picture, websites; from admin)" in status
    bad = wagate("profile", "set", "1", "--config", str(service.config), "--email", "nope",
                 check=False)
    assert bad.returncode != 0 and "HTTP 400" in bad.stderr and "email" in bad.stderr


def test_check_config_says_what_a_provider_cannot_apply(tmp_path: Path) -> None:
    path = tmp_path / "wagate.toml"
    path.write_text(base_config(tmp_path / "db") + '\n[waha]\nbase_url = "http://127.0.0.1:3"\n'
                    'api_key = "k"\nhmac_key = "h"\n\n[[instances]]\nid = 3\n'
                    'number = "+15550003333"\nprovider = "waha"\n\n[instances.profile]\n'
                    'about = "Hi"\ndescription = "Shop"\nemail = "a@b.example"\n')
    out = wagate("check-config", str(path)).stdout
    assert "OK" in out
    assert ("note: instance 3: provider waha cannot set description, email; those profile "
            "fields are not applied") in out
