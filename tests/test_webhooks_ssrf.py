"""The webhook address guard, spelling by spelling: a host is judged exactly as
the HTTP client will connect to it (yarl's parse, IDNA/NFKC folding), an IPv4
address in any spelling but the dotted quad is refused outright, and the
special-purpose blocks are refused whatever this Python's `ipaddress` says.

Config load refuses what can never be delivered (naming subscriber and URL; a
reload with it keeps the old config); the deliverer refuses on its own too,
shown here by handing the real app a config that skipped that validation, and
a name is judged once resolved. Every refusal is one attempt in the log, and the
loopback receiver sees nothing."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import Config, ConfigError
from bot.config.load import parse_config
from bot.forwarding.safety import check_url, refusal
from tests.conftest import ADMIN, base_config, say
from tests.test_operations import read, write
from tests.webhook_helpers import Receiver, settled, show, subscribers_toml

U = "+34600000001"
NO_PRIVATE = "allow_private_networks = []"

# Every host below denotes this machine (127.0.0.1 or ::1): safe to let the real
# deliverer try, since even a guard that failed could only reach loopback.
LOOPBACK_SPELLINGS = [
    "１２７.０.０.１",          # full-width digits: yarl folds them to 127.0.0.1
    "１２７．０．０．１",        # full-width digits and dots
    "127。0。0。1",             # ideographic full stops (IDNA label separators)
    "¹²⁷.0.0.1",              # superscript digits (NFKC)
    "127.1",                  # short forms
    "127.0.1",
    "2130706433",             # one decimal number
    "0x7f000001",             # one hex number
    "017700000001",           # one octal number
    "0x7f.0.0.1",             # hex part
    "0177.0.0.1",             # octal part
    "127.000.000.001",        # zero-padded (octal to inet_aton)
    "127.0.0.1.",             # trailing dot
    "127.0.0.1..",
    "[::ffff:127.0.0.1]",     # IPv4-mapped IPv6
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::1]",
    "0.0.0.0",                # "this host": Linux connects it to loopback
    "0",
]

# Hosts that denote other machines' private, link-local or special addresses:
# judged here without any connection (nothing may be sent off loopback).
ELSEWHERE_SPELLINGS = [
    "169.254.169.254",        # the cloud metadata address
    "0xa9.0xfe.0xa9.0xfe",
    "0251.0376.0251.0376",
    "2852039166",
    "169.254.43518",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[fe80::1]",
    "[fe80::1%25eth0]",
    "10.0.0.1",
    "10.1",
    "012.0.0.1",
    "0xa000001",
    "１０.０.０.１",
    "192.168.1.1",
    "192.168.257",
    "0xc0a80101",
    "3232235777",
    "0300.0250.1.1",
    "192.168.1.1.",
    "172.16.0.1",
    "172.016.0.1",
    "0xac.16.0.1",
    "[2002:7f00:1::]",        # 6to4 of 127.0.0.1
    "[2002:a9fe:a9fe::]",     # 6to4 of 169.254.169.254
    "[64:ff9b::a9fe:a9fe]",   # NAT64 of 169.254.169.254
    "[64:ff9b:1::1]",
    "[::127.0.0.1]",          # IPv4-compatible (deprecated)
    "[::]",
    "[fc00::1]",
    "[fd00::2]",
    "[fec0::1]",
    "[ff02::1]",
    "[2001:db8::1]",
    "[2001::1]",              # Teredo
    "[100::1]",
    "192.0.0.8",              # IETF protocol assignments: "global" to Python 3.11.7
    "192.0.0.9",
    "192.0.0.170",
    "192.0.2.1",
    "100.64.0.1",
    "198.18.0.1",
    "192.88.99.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "1.2.3.4.5",              # ends in a number but is no address: never deliverable
    "xn--9hbcp.0.0.1",        # Arabic-Indic digits after IDNA
    "١٢٧.0.0.1",
]

# (`localhost.` is left to the reliability suite: not every resolver strips the dot.)
NAMES_OF_LOOPBACK = ["localhost", "LOCALHOST", "ｌｏｃａｌｈｏｓｔ"]


def url_with(host: str, base: str, path: str = "/acme") -> str:
    """`base`'s URL (http://127.0.0.1:PORT) with its host spelled as `host`."""
    port = base.rsplit(":", 1)[1]
    return f"http://{host}:{port}{path}"


def subscribers_with(url: str, allow: str = NO_PRIVATE) -> str:
    """acme's endpoint at `url` (the others on an unused name), with `allow` in force."""
    toml = subscribers_toml("http://hooks.invalid").replace(
        'allow_private_networks = ["127.0.0.0/8"]', allow)
    return toml.replace('url = "http://hooks.invalid/acme"', f'url = "{url}"')


def skipping_validation(config: Config, url: str) -> Config:
    """`config` with acme's endpoint at `url` as written, never judged by config load:
    what the deliverer must refuse by itself."""
    acme = config.subscribers["acme"]
    acme = dataclasses.replace(acme, webhooks=(dataclasses.replace(acme.webhooks[0], url=url),))
    subs = {**config.subscribers, "acme": acme}
    return dataclasses.replace(
        config, subscribers=subs,
        subscribers_by_client_id={s.client_id: s for s in subs.values()},
        subscribers_by_keyword={s.keyword.casefold(): s for s in subs.values() if s.keyword})


async def refused_once(client: TestClient) -> dict[str, Any]:
    """acme's one delivery, settled: failed after a single `refused` attempt."""
    rows = await settled(client, 1, subscriber="acme")
    assert len(rows) == 1
    delivery = await show(client, rows[0]["id"])
    assert delivery["status"] == "failed"
    assert [a["outcome"] for a in delivery["attempt_log"]] == ["refused"]
    return delivery


# ------------------------------------------------------------------ config load


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + ELSEWHERE_SPELLINGS)
def test_config_load_refuses_every_spelling(tmp_path: Path, host: str) -> None:
    url = f"http://{host}:8080/acme"
    text = base_config(tmp_path / "w.db", extra=subscribers_with(url))
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="wagate.toml", env={})
    message = str(err.value)
    assert "subscribers[0].webhooks[0].url" in message and "'acme'" in message
    assert repr(url) in message


@pytest.mark.parametrize("url", [
    "ftp://hooks.example.com/x", "file:///etc/passwd", "gopher://hooks.example.com/",
    "http:///no-host", "http://[::1/x", "http://hooks.example.com:99999/x",
])
def test_config_load_refuses_what_is_no_http_url(tmp_path: Path, url: str) -> None:
    text = base_config(tmp_path / "w.db", extra=subscribers_with(url))
    with pytest.raises(ConfigError, match=r"subscribers\[0\]\.webhooks\[0\]\.url: .*'acme'"):
        parse_config(text, source="wagate.toml", env={})


def test_config_load_lets_allowed_literals_and_names_through(tmp_path: Path) -> None:
    allow = 'allow_private_networks = ["127.0.0.0/8", "169.254.0.0/16"]'
    for url in ("http://127.0.0.1:8080/a", "http://[::ffff:127.0.0.1]:8080/a",
                "http://１２７.０.０.１:8080/a", "http://169.254.169.254/a",
                "http://localhost:8080/a", "https://hooks.example.com/a"):
        config = parse_config(base_config(tmp_path / "w.db", extra=subscribers_with(url, allow)))
        assert config.subscribers["acme"].webhooks[0].url == url
    # allow_private_networks covers addresses, never another spelling of one.
    text = base_config(tmp_path / "w.db", extra=subscribers_with("http://127.1:8080/a", allow))
    with pytest.raises(ConfigError, match=re.escape("write it as 127.0.0.1")):
        parse_config(text)


async def test_a_reload_with_such_a_url_is_refused_and_the_old_config_stays(
        make_client: Callable[..., Awaitable[TestClient]], config_path: Path,
        receiver: Receiver) -> None:
    allow = 'allow_private_networks = ["127.0.0.0/8"]'
    client = await make_client(subscribers_with(f"{receiver.base}/acme", allow))
    write(config_path, read(config_path).replace(f"{receiver.base}/acme",
                                                 url_with("0x7f.0.0.1", receiver.base)))
    resp = await client.post("/admin/reload", headers=ADMIN)
    assert resp.status == 422
    body = await resp.json()
    assert body["error"] == "reload_refused"
    assert "'acme'" in body["error_message"] and "0x7f.0.0.1" in body["error_message"]
    await say(client, "still going to the old URL", sender=U, instance=3)
    rows = await settled(client, 1, subscriber="acme")
    assert rows[0]["status"] == "delivered" and len(receiver.on("/acme")) == 1


# --------------------------------------------------------- the deliverer's own check


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_the_deliverer_refuses_every_spelling_of_loopback(
        make_config: Callable[..., Config], aiohttp_client: Callable[..., Awaitable[TestClient]],
        receiver: Receiver, host: str) -> None:
    url = url_with(host, receiver.base)
    config = skipping_validation(make_config(subscribers_with("http://localhost/acme")), url)
    client = await aiohttp_client(create_app(config))
    await say(client, "to loopback", sender=U, instance=3)
    delivery = await refused_once(client)
    error = delivery["attempt_log"][0]["error"]
    assert "allow_private_networks" in error or "not a canonical IPv4 address" in error, error
    assert receiver.hits == []


@pytest.mark.parametrize("name", NAMES_OF_LOOPBACK)
async def test_names_of_loopback_are_refused_once_resolved(
        make_client: Callable[..., Awaitable[TestClient]], receiver: Receiver,
        name: str) -> None:
    client = await make_client(subscribers_with(url_with(name, receiver.base)))
    await say(client, "to a name", sender=U, instance=3)
    delivery = await refused_once(client)
    error = delivery["attempt_log"][0]["error"]
    assert "localhost" in error and "127.0.0.1 (loopback)" in error, error
    assert receiver.hits == []


# ------------------------------------------------------------------ the rules themselves


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + ELSEWHERE_SPELLINGS)
def test_check_url_refuses_every_spelling(host: str) -> None:
    assert check_url(f"http://{host}/x", ()) is not None
    assert check_url(f"https://{host}:8443/x", ()) is not None


@pytest.mark.parametrize(("host", "says"), [
    ("127.1", "'127.1' is not a canonical IPv4 address: it means 127.0.0.1 (loopback)"),
    ("2852039166", "it means 169.254.169.254 (link-local)"),
    ("0x08.8.8.8", "it means 8.8.8.8; write it as 8.8.8.8"),
    ("1.2.3.4.5", "'1.2.3.4.5' is not a canonical IPv4 address: it is no address at all"),
    ("１２７.０.０.１", "address 127.0.0.1 is loopback"),
    ("[::ffff:169.254.169.254]", "address ::ffff:a9fe:a9fe is link-local (IPv4 169.254.169.254)"),
    ("[2002:7f00:1::]", "address 2002:7f00:1:: is loopback (IPv4 127.0.0.1)"),
    ("192.0.0.8", "address 192.0.0.8 is IETF protocol assignments"),
])
def test_check_url_says_why(host: str, says: str) -> None:
    assert says in (check_url(f"http://{host}/x", ()) or "")


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/x", "http://ｈｏｏｋｓ.example.com/x", "http://0x7f.example.com/",
    "http://8.8.8.8/x", "http://[2606:4700::1111]/x", "http://[64:ff9b::808:808]/x",
    "http://[2002:808:808::1]/x", "http://192.31.196.1/x", "http://localhost:1/x",
])
def test_check_url_passes_public_addresses_and_names(url: str) -> None:
    assert check_url(url, ()) is None  # a name: the resolver judges what it resolves to


@pytest.mark.parametrize(("address", "why"), [
    ("8.8.8.8", None), ("2606:4700::1111", None), ("192.31.196.1", None),
    ("192.52.193.1", None), ("192.175.48.1", None), ("2620:4f:8000::1", None),
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"),
    ("192.168.0.1", "private"), ("172.16.5.5", "private"), ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "this network"), ("::", "unspecified"), ("100.64.0.1", "shared address space"),
    ("::ffff:10.0.0.1", "private (IPv4 10.0.0.1)"), ("fc00::1", "unique local"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("192.0.0.8", "IETF protocol assignments"), ("192.0.0.9", "IETF protocol assignments"),
    ("192.0.0.170", "IETF protocol assignments"), ("2001::1", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"), ("2001:db8::1", "documentation"), ("3fff::1", "documentation"),
    ("198.18.0.1", "benchmarking"), ("192.88.99.1", "deprecated 6to4 relay anycast"),
    ("64:ff9b:1::1", "local-use IPv4/IPv6 translation"), ("100::1", "discard-only"),
    ("fec0::1", "site-local"), ("::7f00:1", "not global unicast"),
    ("5f00::1", "not global unicast"), ("2002:a00:1::", "private (IPv4 10.0.0.1)"),
    ("64:ff9b::7f00:1", "loopback (IPv4 127.0.0.1)"),
])
def test_refusal_rules(address: str, why: str | None) -> None:
    assert refusal(ipaddress.ip_address(address), ()) == why


def test_allow_private_networks_lets_listed_ones_through() -> None:
    allowed = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert refusal(ipaddress.ip_address("10.9.9.9"), allowed) is None
    assert refusal(ipaddress.ip_address("::ffff:10.9.9.9"), allowed) is None
    assert refusal(ipaddress.ip_address("::1"), allowed) is None
    # 6to4 and NAT64 reach the IPv4 address through a relay, not on this host.
    assert refusal(ipaddress.ip_address("2002:a09:909::"), allowed) == "private (IPv4 10.9.9.9)"
    assert refusal(ipaddress.ip_address("64:ff9b::a09:909"), allowed) == "private (IPv4 10.9.9.9)"
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed) == "loopback"
    assert check_url("http://10.1.1.1/x", allowed) is None
    assert "loopback" in (check_url("http://127.0.0.1/x", allowed) or "")
    assert "not a canonical" in (check_url("http://10.1/x", allowed) or "")
