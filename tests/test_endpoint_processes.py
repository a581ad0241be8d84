"""Two real `wagate serve` processes on one PostgreSQL database: a webhook
endpoint a subscriber adds, rotates or deletes through one is in force on the
other within a second, and the other's deliveries to it carry both signatures
during the rotation's overlap (checked with the official validator)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from standardwebhooks import Webhook

from tests.test_managed_processes import (  # noqa: F401 (the fixtures)
    ADMIN,
    call,
    creds,
    postgres_schema_url,
    postgres_server,
    seen_within,
    two_hosts,
)

pytestmark = pytest.mark.slow  # real `wagate` processes


Hit = tuple[str, dict[str, str], bytes]


class Hits(BaseHTTPRequestHandler):
    received: ClassVar[list[Hit]]  # each fixture's subclass has its own

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, {k.lower(): v for k, v in self.headers.items()},
                              body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # quiet
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Hit]]]:
    received: list[Hit] = []
    handler = type("Mine", (Hits,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_an_endpoint_changed_through_one_process_is_used_by_the_other_within_a_second(
        two_hosts: tuple[str, str],  # noqa: F811 (the fixture)
        receiver: tuple[str, list[Hit]]) -> None:
    a, b = two_hosts
    base, received = receiver
    status, issued = call("POST", f"{a}/admin/subscribers", ADMIN,
                          {"id": "zeta", "plan": "enterprise", "instances": [1]})
    assert status == 201
    zeta = creds(issued)
    seen_within(lambda: call("GET", f"{b}/v3/account", zeta)[0] == 200)

    status, added = call("POST", f"{a}/v3/account/webhooks", zeta, {"url": f"{base}/zeta"})
    assert status == 201, added
    endpoint = added["endpoint"]["id"]

    def on_b() -> Any:
        return call("GET", f"{b}/v3/account/webhooks/{endpoint}", zeta)

    seen_within(lambda: on_b()[0] == 200)
    status, rotated = call("POST", f"{a}/v3/account/webhooks/{endpoint}/secret", zeta,
                           {"overlap_hours": 1})
    assert status == 200, rotated
    seen_within(lambda: len(on_b()[1].get("signing_keys", [])) == 2)
    # A test event queued through the other process, signed with both secrets.
    assert call("POST", f"{b}/v3/account/webhooks/{endpoint}/test", zeta)[0] == 200
    seen_within(lambda: bool(received))
    path, headers, body = received[0]
    assert path == "/zeta" and len(headers["webhook-signature"].split(" ")) == 2
    for secret in (added["secret"], rotated["secret"]):
        assert Webhook(secret).verify(body, headers)["type"] == "test"

    assert call("DELETE", f"{a}/v3/account/webhooks/{endpoint}", zeta)[0] == 200
    seen_within(lambda: on_b()[0] == 404)
    status, audit = call("GET", f"{b}/admin/audit?target=zeta", ADMIN)
    assert [e["action"] for e in audit["entries"]][:3] == [
        "endpoint.deleted", "endpoint.secret_rotated", "endpoint.created"]
