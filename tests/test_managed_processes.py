"""Two real `wagate serve` processes on one PostgreSQL database (two hosts, as
far as they know): a subscriber created, suspended, resumed, given a new
secret or deleted through one is in force on the other within a second,
without a reload (NOTIFY on the change's commit)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.store_contract.conftest import postgres_server as postgres_server  # the fixture
from tests.test_cli import free_port, start_service, stop_service
from tests.test_processes import on_port
from tests.test_processes import postgres_schema_url as postgres_schema_url  # the fixture
from tests.test_webhooks_recovery import service_config

pytestmark = pytest.mark.slow  # real `wagate` processes

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# The contract; each change is seen well before it (a NOTIFY is milliseconds).
IN_FORCE_WITHIN = 1.0
STARTED_WITHIN = 60.0  # two services starting on a busy machine


def call(method: str, url: str, headers: dict[str, str],
         body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def creds(issued: dict[str, Any]) -> dict[str, str]:
    return {"X-WM-CLIENT-ID": issued["client_id"], "X-WM-CLIENT-SECRET": issued["secret"]}


def seen_within(check: Callable[[], bool]) -> float:
    """Seconds until `check` holds (polled every 10 ms); fails past the contract."""
    start = time.monotonic()
    while not check():
        elapsed = time.monotonic() - start
        assert elapsed < IN_FORCE_WITHIN, f"not in force after {elapsed:.2f}s"
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def two_hosts(tmp_path: Path, postgres_schema_url: str) -> Iterator[tuple[str, str]]:
    port_a, port_b = free_port(), free_port()
    config = service_config(tmp_path, port_a, free_port())
    config.write_text(config.read_text().replace(
        f'url = "sqlite:///{tmp_path / "wagate.db"}"', f'url = "{postgres_schema_url}"'))
    other = on_port(config, port_b, "other.toml")
    a = start_service(config, port_a, timeout=STARTED_WITHIN)
    try:
        b = start_service(other, port_b, timeout=STARTED_WITHIN)
        try:
            yield f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        finally:
            stop_service(b)
    finally:
        stop_service(a)


def test_a_change_through_one_process_is_in_force_on_the_other_within_a_second(
        two_hosts: tuple[str, str]) -> None:
    a, b = two_hosts

    def account_on_b(headers: dict[str, str]) -> tuple[int, Any]:
        return call("GET", f"{b}/v3/account", headers)

    status, issued = call("POST", f"{a}/admin/subscribers", ADMIN,
                          {"id": "zeta", "plan": "enterprise", "instances": [1]})
    assert status == 201
    first = creds(issued)
    seen_within(lambda: account_on_b(first)[0] == 200)
    assert call("POST", f"{a}/admin/subscribers/zeta/suspend", ADMIN)[0] == 200
    seen_within(lambda: account_on_b(first)[1].get("state") == "suspended")
    assert call("POST", f"{a}/admin/subscribers/zeta/resume", ADMIN)[0] == 200
    seen_within(lambda: account_on_b(first)[1].get("state") == "active")
    # A leaked secret replaced with no overlap, through the subscriber's own API.
    status, rotated = call("POST", f"{a}/v3/account/secrets", first, {"overlap_hours": 0})
    assert status == 201
    second = creds(rotated)
    seen_within(lambda: account_on_b(first)[0] == 474 and account_on_b(second)[0] == 200)
    assert call("PATCH", f"{a}/admin/subscribers/zeta", ADMIN, {"plan": "trial"})[0] == 200
    seen_within(lambda: account_on_b(second)[1].get("plan") == "trial")
    assert call("DELETE", f"{a}/admin/subscribers/zeta", ADMIN)[0] == 200
    seen_within(lambda: account_on_b(second)[0] == 474)
    assert call("GET", f"{b}/admin/subscribers/zeta", ADMIN)[0] == 404
    # Every change in the one audit log, whichever process made it.
    status, audit = call("GET", f"{b}/admin/audit?target=zeta", ADMIN)
    assert [e["action"] for e in audit["entries"]] == [
        "subscriber.deleted", "subscriber.updated", "secret.rotated", "subscriber.resumed",
        "subscriber.suspended", "subscriber.created"]
