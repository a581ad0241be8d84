"""The operator's day with `wagate subscribers` and `wagate audit`, against a
real `wagate serve`: add a customer, change, suspend and resume it, rotate a
leaked secret, delete it, and read who did what."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_cli import Service, wagate
from tests.test_cli import service as service  # the fixture

pytestmark = pytest.mark.slow  # a real `wagate serve`


def account(service: Service, client_id: str, secret: str) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(f"{service.url}/v3/account", headers={
        "X-WM-CLIENT-ID": client_id, "X-WM-CLIENT-SECRET": secret})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def issued(out: str) -> tuple[str, str]:
    found = re.search(r"CLIENT_ID\s+(\S+)\n\s+SECRET\s+(\S+)", out)
    assert found, out
    return found.group(1), found.group(2)


def run(service: Service, *args: str, check: bool = True) -> str:
    result = wagate(*args, "--config", str(service.config), check=check)
    return result.stdout + result.stderr


def test_the_operators_day(service: Service) -> None:
    out = run(service, "subscribers", "add", "zeta", "--plan", "enterprise", "--instances", "1",
              "--email", "ops@zeta.example", "--name", "Zeta Ltd")
    assert "created zeta" in out and "shown this once" in out
    client_id, secret = issued(out)
    assert account(service, client_id, secret)[0] == 200
    listing = run(service, "subscribers", "list")
    assert re.search(r"^acme\s+\S+\s+enterprise\s+config", listing, re.MULTILINE)
    assert re.search(r"^zeta\s+active\s+enterprise\s+store\s+" + client_id, listing,
                     re.MULTILINE)
    assert secret not in listing
    out = run(service, "subscribers", "set", "zeta", "--plan", "trial", "--expires",
              "2099-01-01")
    assert "trial" in out and "until 2099-01-01" in out
    assert "suspended" in run(service, "subscribers", "suspend", "zeta")
    assert account(service, client_id, secret)[1]["state"] == "suspended"
    run(service, "subscribers", "resume", "zeta")
    assert account(service, client_id, secret)[1]["state"] == "active"
    # A leaked secret: a new one, the old one refused at once.
    out = run(service, "subscribers", "rotate", "zeta", "--overlap-hours", "0")
    _, new_secret = issued(out)
    assert account(service, client_id, secret)[0] == 474
    assert account(service, client_id, new_secret)[0] == 200
    shown = json.loads(run(service, "subscribers", "show", "zeta", "--json"))
    assert shown["email"] == "ops@zeta.example" and shown["older_secrets_until"] == []
    # The file's subscriber is refused with the reason; nothing else is touched.
    refused = wagate("subscribers", "suspend", "acme", "--config", str(service.config),
                     check=False)
    assert refused.returncode == 1
    assert "HTTP 409" in refused.stderr and "provisioned by the config file" in refused.stderr
    assert "deleted zeta" in run(service, "subscribers", "delete", "zeta")
    assert account(service, client_id, new_secret)[0] == 474
    audit = run(service, "audit", "--target", "zeta")
    actions = re.findall(r"^\S+\s+admin\s+(\S+)\s+zeta\s+127\.0\.0\.1", audit, re.MULTILINE)
    assert actions == ["subscriber.deleted", "secret.rotated", "subscriber.resumed",
                       "subscriber.suspended", "subscriber.updated", "subscriber.created"]
    assert secret not in audit and new_secret not in audit
    assert "(older: --before" in run(service, "audit", "--limit", "2")


def test_bad_flags_are_refused_before_any_request(tmp_path: Path, service: Service) -> None:
    out = wagate("subscribers", "set", "zeta", "--config", str(service.config), check=False)
    assert out.returncode == 1 and "nothing to change" in out.stderr
    out = wagate("subscribers", "add", "zeta", "--instances", "one", "--config",
                 str(service.config), check=False)
    assert out.returncode == 1 and "--instances takes instance ids" in out.stderr
    out = wagate("subscribers", "add", "zeta", "--plan", "gold", "--config",
                 str(service.config), check=False)
    assert out.returncode == 1 and "unknown plan 'gold'" in out.stderr
