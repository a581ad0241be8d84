"""`[[templates]]`: validated at load (and so by check-config), with the
language chosen by the user's locale."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError
from bot.config.load import parse_config
from tests.conftest import ROOT
from tests.test_cli import wagate

CONFIG = f"""
[admin]
token = "long-enough-token"

[locales]
dir = "{ROOT / 'locales'}"

[meta]
app_secret = "a"
verify_token = "v"
access_token = "t"

[[instances]]
id = 1
number = "+15550001111"

[[instances]]
id = 2
number = "+15550002222"
provider = "meta"
phone_number_id = "1"

[[subscribers]]
id = "acme"
client_id = "dev@acme.example"
secret = "s3cret"
plan = "enterprise"
since = 2026-11-01
instances = [1, 2]

[[templates]]
name = "wagate_notification"
category = "utility"
use = "notification"
parameters = 1
languages = {{ en = "en_US", pt_BR = "pt_BR", es = "es", "*" = "en_US" }}

[[templates]]
name = "acme_notice"
subscriber = "acme"
instances = [2]
category = "marketing"
use = "notification"
parameters = 1
languages = {{ "*" = "en_GB" }}
"""


def test_templates_load_with_their_lookups() -> None:
    config = parse_config(CONFIG)
    assert config.window_instances == frozenset({2})
    shared = config.templates.notification(2, None, "none")
    assert shared is not None and shared.name == "wagate_notification"
    assert shared.language_for("pt_BR") == "pt_BR"
    assert shared.language_for("es") == "es"
    assert shared.language_for("pt_PT") == "en_US"  # no pt entry: the "*" fallback
    assert shared.language_for("de") == "en_US"
    own = config.templates.notification(2, "acme", "none")
    assert own is not None and own.name == "acme_notice"  # the subscriber's override
    assert config.templates.notification(2, None, "image") is None
    assert config.templates.named(2, "acme", "wagate_notification") is shared


@pytest.mark.parametrize(("patch", "message"), [
    (('category = "utility"', 'category = "promo"'),
     "templates[0].category: must be one of utility, marketing, authentication"),
    (('parameters = 1\nlanguages = { en', 'parameters = 2\nlanguages = { en'),
     "a notification template takes 0 or 1 body parameters"),
    (('"*" = "en_US" }', '"*" = "english!" }'), "is not a language code"),
    ((', "*" = "en_US" }', ' }'), 'needs a "*" entry'),
    (('instances = [2]', 'instances = [1]'), "instance 1's provider sends no templates"),
    (('instances = [2]', 'instances = [9]'), "9 is not a configured instance"),
    (('subscriber = "acme"', 'subscriber = "zed"'), "unknown subscriber 'zed'"),
    (('use = "notification"\nparameters = 1\nlanguages = { en', 'use = "auto"\nparameters = 1'
      '\nlanguages = { en'), 'must be "notification"'),
    (('subscriber = "acme"\ninstances = [2]', 'instances = [2]'), ""),
    (('name = "acme_notice"\nsubscriber = "acme"\ninstances = [2]\n', 'name = "x"\n'),
     "a second notification template with header 'none' for instance 2"),
])
def test_bad_templates_are_refused_precisely(patch: tuple[str, str], message: str) -> None:
    text = CONFIG.replace(*patch)
    assert text != CONFIG
    if not message:  # an instance-specific one overrides one for every instance
        parse_config(text)
        return
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="wagate.toml", env={})
    assert message in str(err.value)


@pytest.mark.slow  # real `wagate` processes
def test_check_config_validates_templates(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.replace('category = "utility"', 'category = "promo"'))
    refused = wagate("check-config", str(bad), check=False)
    assert refused.returncode == 2
    assert "templates[0].category" in refused.stderr
    good = tmp_path / "good.toml"
    good.write_text(CONFIG)
    assert "OK" in wagate("check-config", str(good)).stdout
