"""Subscribers managed at runtime, end to end over HTTP on each backend: the
admin creates one (its secret shown once), it sends with it; a change, a
suspension, a deletion or a new secret is in force at the next request; the
file's provisioned subscribers are shown and refused changes; every change is
in the audit log, which never holds a secret."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from bot.web.keys import clock_key, store_key
from tests.conftest import ADMIN, say
from tests.send_helpers import ACME, DEFAULT, send, today, usage

AppClient = Callable[..., Awaitable[TestClient]]
U = "+34600000001"
TEXT = {"number": U, "message": "hello"}


def creds(created: dict[str, Any]) -> dict[str, str]:
    return {"X-WM-CLIENT-ID": created["client_id"], "X-WM-CLIENT-SECRET": created["secret"]}


async def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"id": "zeta", "plan": "enterprise", "instances": [1], **fields}
    resp = await client.post("/admin/subscribers", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def sends(client: TestClient, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    resp = await send(client, "single", "text", TEXT, headers=headers)
    return resp.status, await resp.json()


async def test_a_created_subscriber_sends_with_the_secret_shown_once(
        make_client: AppClient) -> None:
    client = await make_client(DEFAULT)
    await say(client, "Hi")
    created = await create(client, email="ops@zeta.example", name="Zeta Ltd")
    secret = created["secret"]
    assert len(secret) >= 43 and created["client_id"].startswith("wg_")  # 32 random bytes
    assert created["subscriber"]["managed_by"] == "store"
    assert created["subscriber"]["since"] == today().isoformat()
    assert await sends(client, creds(created)) == (200, {"status": "queued", "id": await
                                                         _last_id(client, "zeta")})
    # Listed beside the file's; the secret is in no answer but the first, nor in the store.
    listing = await (await client.get("/admin/subscribers", headers=ADMIN)).json()
    by_id = {s["id"]: s for s in listing["subscribers"]}
    assert by_id["acme"]["managed_by"] == "config" and by_id["zeta"]["name"] == "Zeta Ltd"
    one = await (await client.get("/admin/subscribers/zeta", headers=ADMIN)).json()
    assert one == created["subscriber"]
    audit = await (await client.get("/admin/audit", headers=ADMIN)).text()
    assert secret not in json.dumps(listing) and secret not in audit
    assert hashlib.sha256(secret.encode()).hexdigest() not in audit
    # A wrong secret for the new client id is refused like any other.
    wrong = {**creds(created), "X-WM-CLIENT-SECRET": secret[:-1] + "x"}
    assert (await sends(client, wrong))[0] == 474


async def _last_id(client: TestClient, subscriber: str) -> str:
    rows = await client.app[store_key].search_outbound(
        subscriber_id=subscriber, status=None, error_code=None, instance_id=None, limit=1)
    return rows[0].id


async def test_changes_suspension_and_deletion_are_in_force_at_the_next_request(
        make_client: AppClient) -> None:
    client = await make_client(DEFAULT)
    await say(client, "Hi")
    headers = creds(await create(client, plan="small", keyword="zeta"))
    assert (await sends(client, headers))[0] == 200
    # A new plan keeps the running period's count.
    resp = await client.patch("/admin/subscribers/zeta", headers=ADMIN,
                              json={"plan": "enterprise", "expires": today(30).isoformat(),
                                    "name": "Zeta"})
    assert resp.status == 200 and (await resp.json())["plan"] == "enterprise"
    assert await usage(client, "zeta") == (1, 1)
    suspended = await client.post("/admin/subscribers/zeta/suspend", headers=ADMIN)
    assert (await suspended.json())["state"] == "suspended"
    status, body = await sends(client, headers)
    assert (status, body["error"]) == (474, "subscription_suspended")
    account = await (await client.get("/v3/account", headers=headers)).json()
    assert account["state"] == "suspended"  # it can still see why
    await client.post("/admin/subscribers/zeta/resume", headers=ADMIN)
    assert (await sends(client, headers))[0] == 200
    assert await usage(client, "zeta") == (2, 1)
    # Deleted: its credentials stop at once, it answers 404, its id is not reused.
    resp = await client.delete("/admin/subscribers/zeta", headers=ADMIN)
    assert await resp.json() == {"status": "deleted", "id": "zeta"}
    status, body = await sends(client, headers)
    assert (status, body["error"]) == (474, "invalid_credentials")
    for method, path in (("get", ""), ("patch", ""), ("delete", ""), ("post", "/suspend"),
                         ("post", "/secrets")):
        resp = await client.request(method, f"/admin/subscribers/zeta{path}", headers=ADMIN,
                                    json={})
        assert (resp.status, (await resp.json())["error"]) == (404, "unknown_subscriber")
    resp = await client.post("/admin/subscribers", headers=ADMIN, json={"id": "zeta"})
    assert resp.status == 409 and "not reused" in (await resp.json())["error_message"]
    # Its messages stay.
    assert await _last_id(client, "zeta")


async def test_a_new_secret_overlaps_the_old_one_then_the_old_one_is_refused(
        make_client: AppClient) -> None:
    client = await make_client(DEFAULT)
    await say(client, "Hi")
    first = creds(await create(client))
    resp = await client.post("/admin/subscribers/zeta/secrets", headers=ADMIN)
    assert resp.status == 201
    rotated = await resp.json()
    second = creds(rotated)
    assert second["X-WM-CLIENT-ID"] == first["X-WM-CLIENT-ID"]
    assert len(rotated["subscriber"]["older_secrets_until"]) == 1
    assert (await sends(client, first))[0] == 200 and (await sends(client, second))[0] == 200
    client.app[clock_key].shift(24 * 3600 + 1)  # the default overlap ends
    assert (await sends(client, first))[0] == 474 and (await sends(client, second))[0] == 200
    # The subscriber's own rotation, for a leak: 0 ends every earlier secret now.
    resp = await client.post("/v3/account/secrets", headers=second, json={"overlap_hours": 0})
    assert resp.status == 201
    third = creds(await resp.json())
    assert (await sends(client, second))[0] == 474 and (await sends(client, third))[0] == 200
    entries = (await (await client.get("/admin/audit?target=zeta", headers=ADMIN)).json())
    assert [(e["actor"], e["action"]) for e in entries["entries"]] == [
        ("subscriber:zeta", "secret.rotated"), ("admin", "secret.rotated"),
        ("admin", "subscriber.created")]
    assert entries["entries"][0]["details"] == {"overlap_hours": 0}
    assert entries["entries"][0]["address"] == "127.0.0.1"


SELF_SERVICE = DEFAULT.replace('id = "beta"\n', 'id = "beta"\nself_service = true\n')
BETA_FILE = {"X-WM-CLIENT-ID": "dev@beta.example", "X-WM-CLIENT-SECRET": "beta-secret"}


async def test_provisioned_subscribers_are_read_only_unless_self_service(
        make_client: AppClient, config_path: Any) -> None:
    client = await make_client(SELF_SERVICE)
    await say(client, "Hi")
    for method, path in (("patch", ""), ("delete", ""), ("post", "/suspend"),
                         ("post", "/resume")):
        resp = await client.request(method, f"/admin/subscribers/acme{path}", headers=ADMIN,
                                    json={"plan": "small"})
        body = await resp.json()
        assert (resp.status, body["error"]) == (409, "provisioned")
        assert str(config_path) in body["error_message"]
    resp = await client.post("/v3/account/secrets", headers=ACME)
    assert (resp.status, (await resp.json())["error"]) == (403, "not_self_service")
    # beta's file says self_service = true: its new secret is kept in the store,
    # and the file's keeps working for the overlap.
    resp = await client.post("/v3/account/secrets", headers=BETA_FILE,
                             json={"overlap_hours": 1})
    assert resp.status == 201
    beta_new = creds(await resp.json())
    assert (await sends(client, BETA_FILE))[0] == 200
    assert (await sends(client, beta_new))[0] == 200
    client.app[clock_key].shift(3601)
    assert (await sends(client, BETA_FILE))[0] == 474
    assert (await sends(client, beta_new))[0] == 200
    shown = await (await client.get("/admin/subscribers/beta", headers=ADMIN)).json()
    assert shown["managed_by"] == "config" and shown["self_service"] is True


async def test_bad_input_is_refused_with_a_readable_message(make_client: AppClient) -> None:
    client = await make_client(DEFAULT)
    await create(client, keyword="Zeta")
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"id": "new", "plan": "gold"}, 400, "unknown_plan", "known: enterprise, "),
        ({"id": "new", "instances": [9]}, 400, "invalid_field",
         "instance 9 is not configured"),
        ({"id": "acme"}, 409, "subscriber_exists", "'acme' exists"),
        ({"id": "zeta"}, 409, "subscriber_exists", "'zeta' exists"),
        ({"id": "new", "keyword": "ZETA"}, 409, "keyword_taken", "subscriber 'zeta'"),
        ({"id": "new", "colour": "red"}, 400, "invalid_field", "unknown field 'colour'"),
        ({"id": "new", "since": "2026-05-01", "expires": "2026-04-01"}, 400,
         "invalid_field", "before since"),
        ({"id": "new", "since": "yesterday"}, 400, "invalid_field", "YYYY-MM-DD"),
        ({"id": "shared"}, 400, "invalid_field", "not \"shared\""),
        ({"plan": "trial"}, 400, "missing_field", "id is required"),
        ({"id": "new", "email": "nobody"}, 400, "invalid_field", "not an email"),
    ]
    for body, status, error, message in cases:
        resp = await client.post("/admin/subscribers", headers=ADMIN, json=body)
        got = await resp.json()
        assert (resp.status, got["error"]) == (status, error), (body, got)
        assert message in got["error_message"], (body, got)
    resp = await client.patch("/admin/subscribers/zeta", headers=ADMIN, json={"id": "other"})
    assert (await resp.json())["error_message"] == "id cannot be changed"
    resp = await client.post("/admin/subscribers/zeta/secrets", headers=ADMIN,
                             json={"overlap_hours": -1})
    assert resp.status == 400 and "overlap_hours" in (await resp.json())["error_message"]
    resp = await client.post("/admin/subscribers", json={"id": "x"})
    assert resp.status == 401
    # Nothing refused was written: one subscriber, one audit entry.
    entries = (await (await client.get("/admin/audit", headers=ADMIN)).json())["entries"]
    assert [e["action"] for e in entries] == ["subscriber.created"]


async def test_the_audit_log_pages_and_filters(make_client: AppClient) -> None:
    client = await make_client(DEFAULT)
    for n in range(5):
        await create(client, id=f"s{n}")
    await client.post("/admin/reload", headers=ADMIN)
    await client.app[store_key].settled()
    page = await (await client.get("/admin/audit?limit=4", headers=ADMIN)).json()
    assert len(page["entries"]) == 4 and page["next_before"] is not None
    rest = await (await client.get(f"/admin/audit?limit=4&before={page['next_before']}",
                                   headers=ADMIN)).json()
    actions = [e["action"] for e in page["entries"] + rest["entries"]]
    assert actions[0] == "config.reloaded" and actions.count("subscriber.created") == 5
    assert rest["next_before"] is None
    only = await (await client.get("/admin/audit?actor=config", headers=ADMIN)).json()
    assert [e["action"] for e in only["entries"]] == ["config.reloaded"]
    assert only["entries"][0]["details"]["generation"] == 2
    assert (await (await client.get("/admin/audit?since=2000-01-01", headers=ADMIN)).json()
            )["entries"]
    assert not (await (await client.get("/admin/audit?since=2999-01-01", headers=ADMIN)
                       ).json())["entries"]
    resp = await client.get("/admin/audit?since=soon", headers=ADMIN)
    assert (await resp.json())["error"] == "invalid_since"


OWNED_BY_ZETA = DEFAULT + """
[[instances]]
id = 3
number = "+15550003333"
provider = "sandbox"
owner = "zeta"
"""


async def test_a_number_owned_by_a_managed_subscriber_is_shared_until_it_exists(
        make_client: AppClient) -> None:
    client = await make_client(OWNED_BY_ZETA)
    await say(client, "Hi", instance=3)
    other = creds(await create(client, id="other", instances=[3]))
    resp = await send(client, "single", "text", TEXT, instance=3, headers=other)
    assert resp.status == 200  # shared: any subscriber listing it
    zeta = creds(await create(client, instances=[]))
    resp = await send(client, "single", "text", TEXT, instance=3, headers=other)
    assert (resp.status, (await resp.json())["error"]) == (404, "unknown_instance")
    resp = await send(client, "single", "text", TEXT, instance=3, headers=zeta)
    assert resp.status == 200  # its own number, listed or not
    await client.delete("/admin/subscribers/zeta", headers=ADMIN)
    resp = await send(client, "single", "text", TEXT, instance=3, headers=other)
    assert resp.status == 200  # shared again
