"""Config validation: precise errors naming file, line and key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.config import ConfigError
from bot.config.load import load_config, parse_config
from bot.store import StoreUnavailable, open_store
from tests.conftest import ROOT

GOOD = f"""
[admin]
token = "long-enough-token"

[locales]
dir = "{ROOT / 'locales'}"

[[instances]]
id = 1
number = "+15550001111"

[[subscribers]]
id = "acme"
client_id = "dev@acme.example"
secret = "s3cret"
plan = "enterprise"
since = 2026-11-01
instances = [1]
"""


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "config.example.toml")
    assert config.instances[1].provider == "sandbox"
    assert config.plans["trial"].messages_per_day == 50


def test_defaults_and_lookups() -> None:
    config = parse_config(GOOD)
    assert config.plans["forever_green"].max_recipients == 50
    assert config.plans["enterprise"].inbound_webhooks is True
    assert config.subscribers_by_client_id["dev@acme.example"].id == "acme"


@pytest.mark.parametrize(("patch", "message"), [
    (("plan = \"enterprise\"", "plan = \"gold\""), "subscribers[0].plan: unknown plan 'gold'"),
    (("id = 1", "id = 0"), "instances[0].id: must be a positive integer"),
    (("number = \"+15550001111\"", "number = \"12\""), "instances[0].number"),
    (("token = \"long-enough-token\"", "token = \"x\""), "admin.token"),
    (("secret = \"s3cret\"", "secret_env = \"WAGATE_NO_SUCH_VAR\""),
     "environment variable WAGATE_NO_SUCH_VAR is not set"),
    (("instances = [1]", "instances = [7]"), "unknown instance 7"),
    (("[[instances]]", "[[instance]]"), "unknown key"),
])
def test_invalid_configs_are_refused_precisely(patch: tuple[str, str], message: str) -> None:
    text = GOOD.replace(*patch)
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="wagate.toml", env={})
    assert message in str(err.value)
    assert str(err.value).startswith("wagate.toml")


def test_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace("plan = \"enterprise\"", "plan = \"gold\""))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    line = GOOD.splitlines().index("plan = \"enterprise\"") + 1
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_duplicate_instance_and_bad_toml() -> None:
    dup = GOOD + "\n[[instances]]\nid = 1\nnumber = \"+15550001112\"\n"
    with pytest.raises(ConfigError, match="duplicate instance id 1"):
        parse_config(dup)
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_config("[server\n")


def test_secret_sha256_and_env() -> None:
    from bot.config import hash_secret

    text = GOOD.replace('secret = "s3cret"', f'secret_sha256 = "{hash_secret("s3cret")}"')
    a = parse_config(text).subscribers["acme"].secret_sha256
    b = parse_config(GOOD.replace('secret = "s3cret"', 'secret_env = "X"'),
                     env={"X": "s3cret"}).subscribers["acme"].secret_sha256
    assert a == b == bytes.fromhex(hash_secret("s3cret"))


@pytest.mark.parametrize("url", ["http://[::1", "http://[zz]/", "ftp://graph.example", "http://"])
def test_bad_graph_base_url_is_a_config_error(url: str) -> None:
    # urlsplit raises ValueError on a broken IPv6 literal: that must read as the
    # config's fault (a refused reload), not escape as a traceback.
    meta = ('[meta]\napp_secret = "a"\nverify_token = "b"\naccess_token = "c"\n'
            f'graph_base_url = "{url}"\n')
    with pytest.raises(ConfigError) as err:
        parse_config(GOOD + "\n" + meta, source="wagate.toml", env={})
    assert "meta.graph_base_url" in str(err.value) and "is not an http(s) URL" in str(err.value)


@pytest.mark.parametrize(("storage", "url", "pool_size"), [
    ("", "sqlite:///./wagate.db", 10),
    ('url = "sqlite:////var/lib/wagate/wagate.db"', "sqlite:////var/lib/wagate/wagate.db", 10),
    ('url = "postgresql://wagate@db:5432/wagate"\npool_size = 4',
     "postgresql://wagate@db:5432/wagate", 4),
    ('url = "postgres://wagate@db/wagate?search_path=eu"', "postgres://wagate@db/wagate?search_path=eu",
     10),
])
def test_storage_picks_a_backend_by_scheme(storage: str, url: str, pool_size: int) -> None:
    config = parse_config(f"[storage]\n{storage}\n{GOOD}")
    assert (config.storage.url, config.storage.pool_size) == (url, pool_size)


def test_storage_url_from_the_environment() -> None:
    secret_url = "postgresql://wagate:pa55@db/wagate"
    config = parse_config(f'[storage]\nurl_env = "WAGATE_DB"\n{GOOD}',
                          env={"WAGATE_DB": secret_url})
    assert config.storage.url == secret_url
    with pytest.raises(ConfigError, match="environment variable WAGATE_DB is not set"):
        parse_config(f'[storage]\nurl_env = "WAGATE_DB"\n{GOOD}', env={})


@pytest.mark.parametrize(("storage", "message"), [
    ('url = "mysql://root@db/wagate"', "storage.url: must be sqlite:///PATH or postgresql://"),
    ('url = "sqlite:///"', "storage.url: sqlite:/// needs a file path"),
    ('url = "wagate.db"', "storage.url: must be sqlite:///PATH"),
    ('url = "postgresql://db/w"\npool_size = 0', "storage.pool_size: must be between 1 and 1000"),
    ('pool_size = "10"', "storage.pool_size: must be an integer"),
])
def test_bad_storage_is_refused_at_load(storage: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"[storage]\n{storage}\n{GOOD}", source="wagate.toml", env={})
    assert message in str(err.value)


async def test_postgres_without_its_driver_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncpg is the `postgres` extra: without it, a postgresql:// url is refused
    when the config is read, and opening such a store says so too."""
    text = f'[storage]\nurl = "postgresql://wagate@db/wagate"\n{GOOD}'
    parse_config(text)  # installed here (make test installs the extra)
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if it were not
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="wagate.toml")
    assert str(err.value) == ("wagate.toml:2: storage.url: PostgreSQL needs the asyncpg "
                              "driver, which is not installed: pip install 'wagate[postgres]'")
    with pytest.raises(StoreUnavailable, match=r"pip install 'wagate\[postgres\]'"):
        await open_store("postgresql://wagate@db/wagate")


def test_migrate_store_without_the_driver_names_the_extra(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    from bot.cli import main

    monkeypatch.setitem(sys.modules, "asyncpg", None)
    monkeypatch.delitem(sys.modules, "bot.store.migrate", raising=False)
    assert main(["migrate-store", "--from", f"sqlite:///{tmp_path / 'w.db'}",
                 "--to", "postgresql://wagate@db/wagate"]) == 1
    assert capsys.readouterr().err == ("error: PostgreSQL needs the asyncpg driver, which is "
                                       "not installed: pip install 'wagate[postgres]'\n")
