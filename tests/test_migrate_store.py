"""`wagate migrate-store`, for real: a SQLite store built through the service
(greetings, a group, an opt-out, sends with quota use, a webhook delivery that
failed after retries, a queued image left claimed by a killed process, a
status that arrived before its send), copied by the command into a fresh
PostgreSQL schema, then looked at through the service running on PostgreSQL
as its users would. And the refusals: a file in use, a target with data, a
copy that fails half way (nothing written), a dry run (nothing written).

PostgreSQL comes from the contract suite's fixtures: a fresh schema per test,
skipped when the server is unreachable (a failure with
WAGATE_TEST_POSTGRES_REQUIRED=1).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import Config
from bot.config.load import load_config
from bot.roles import Roles
from bot.web.keys import store_key
from bot.web.snapshot import holder_key
from tests.conftest import (
    ADMIN,
    PNID,
    meta_text,
    outbox,
    post_signed,
    say,
    wait_for,
    wait_sent,
)
from tests.graph import GraphState
from tests.send_helpers import PNG, b64, plan, send, subscriber, usage
from tests.store_contract.conftest import (  # noqa: F401 (fixtures used by name)
    Backend,
    postgres,
    postgres_server,
)
from tests.test_cli import free_port, start_service, stop_service, wagate, write_config
from tests.test_processes import in_use
from tests.test_send_api import queued
from tests.webhook_helpers import ACME_SECRET, Receiver, deliveries, show

pytestmark = pytest.mark.slow  # real `wagate` processes

U = "+34600000001"  # registered; acme sends to U, U writes back to acme
V = "+34600000002"  # registered, then opted out
M = "34600000003"  # on the Meta number (instance 2): the queued image's recipient
FAMILY = {"id": "120363000000000001@g.us", "name": "Family"}

AppClient = Callable[..., Awaitable[TestClient]]


def acme(receiver: str) -> str:
    """acme on a small plan (4 messages a day, 3 recipients) with one standard
    webhook; deliveries tried twice, quickly."""
    return (plan("small", messages=4, recipients=3, extra="inbound_webhooks = true\n")
            + subscriber("acme", "dev@acme.example", "acme-secret", plan="small")
            + f"""
[[subscribers.webhooks]]
url = "{receiver}/acme"
format = "standard"
secret = "{ACME_SECRET}"

[webhooks]
timeout = 2
retry_schedule = [0, 0.05]
allow_private_networks = ["127.0.0.0/8"]
""")


def on_postgres(config: Config, url: str) -> Config:
    """The same config with `[storage] url` moved to PostgreSQL: the operator's
    one-line change after the copy."""
    path = Path(config.path)
    moved = path.with_name("wagate-pg.toml")
    text = path.read_text()
    sqlite_line = f'url = "sqlite:///{config.storage.sqlite_path}"'
    assert sqlite_line in text
    moved.write_text(text.replace(sqlite_line, f'url = "{url}"'))
    return load_config(moved)


async def migrate(db: Path, target: str, *extra: str) -> tuple[int, str, str]:
    """`wagate migrate-store` as a subprocess: (exit code, stdout, stderr)."""
    done = await asyncio.to_thread(wagate, "migrate-store", "--from", f"sqlite:///{db}",
                                   "--to", target, *extra, check=False)
    return done.returncode, done.stdout, done.stderr


def printed_counts(stdout: str) -> dict[str, int]:
    return {m[1]: int(m[2].replace(",", ""))
            for m in re.finditer(r"(?m)^  (\w+) +([\d,]+)$", stdout)}


def sqlite_counts(db: Path, tables: list[str]) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


async def target_tables(target: Backend) -> list[str]:
    """The tables in the target's schema, as `\\dt` would list them."""
    conn = await asyncpg.connect(target.url)
    try:
        return sorted(r[0] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema()"))
    finally:
        await conn.close()


async def get_json(client: TestClient, url: str, **kwargs: Any) -> Any:
    resp = await client.get(url, **kwargs)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def views(client: TestClient, message_ids: list[str]) -> dict[str, Any]:
    """What the admin and a subscriber can see of the stored state."""
    listed = await deliveries(client)
    return {
        "registrations": await get_json(client, "/admin/registrations", headers=ADMIN),
        "messages": await get_json(client, "/admin/messages", headers=ADMIN,
                                   params={"limit": "1000"}),
        "outbox": await get_json(client, "/sandbox/outbox", headers=ADMIN,
                                 params={"limit": "1000"}),
        "deliveries": [await show(client, d["id"]) for d in listed],
        "endpoints": await get_json(client, "/admin/endpoints", headers=ADMIN),
        "statuses": [await get_json(client, f"/v3/whatsapp/messages/{mid}",
                                    headers={"X-WM-CLIENT-ID": "dev@acme.example",
                                             "X-WM-CLIENT-SECRET": "acme-secret"})
                     for mid in message_ids],
        "usage": await usage(client),
        "subscribers": await get_json(client, "/admin/subscribers", headers=ADMIN),
        "audit": await get_json(client, "/admin/audit", headers=ADMIN),
    }


def meta_status(wamid: str, status: str) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{
        "field": "messages", "value": {"metadata": {"phone_number_id": PNID},
                                       "statuses": [{"id": wamid, "status": status,
                                                     "timestamp": str(int(time.time())),
                                                     "recipient_id": M}]}}]}]}


async def test_a_sqlite_store_moves_to_postgresql_with_everything_a_user_sees(
        aiohttp_client: AppClient, make_config: Callable[..., Config], receiver: Receiver,
        graph_state: GraphState, postgres: Backend) -> None:  # noqa: F811
    config = make_config(acme(receiver.base))
    db = Path(config.storage.sqlite_path)
    receiver.script("/acme", *[(503, {}, 0.0)] * 20)  # acme's endpoint is down throughout

    # On SQLite, everything running: users, a group, a send, a failing webhook.
    app = await aiohttp_client(create_app(config))
    await say(app, "Hola", sender=U)
    await say(app, "Hi", sender=V)
    await say(app, "STOP", sender=V)
    await say(app, "Hola", sender=U, group=FAMILY)
    assert (await post_signed(app, meta_text("Hi", sender=M))).status == 200
    await wait_sent(app)
    shipped = await queued(await send(app, "single", "text",
                                      {"number": U, "message": "Your order has shipped"}))
    await wait_sent(app)
    await say(app, "order 66", sender=U)  # U writes back: routed to acme, whose endpoint fails

    async def failed_reply() -> list[dict[str, Any]] | None:
        rows = await deliveries(app)
        done = all(d["status"] != "pending" for d in rows)
        return rows if done and any(d["type"] == "message.received" for d in rows) else None

    rows = await wait_for(failed_reply, 10)
    [reply] = [d for d in rows if d["type"] == "message.received"]
    assert reply["status"] == "failed" and reply["attempts"] == 2
    # A managed subscriber whose secret was rotated: both secrets in force for an hour.
    zeta = await app.post("/admin/subscribers", headers=ADMIN,
                          json={"id": "zeta", "plan": "small", "instances": [1]})
    first = zeta_credentials(await zeta.json())
    rotated = await app.post("/admin/subscribers/zeta/secrets", headers=ADMIN,
                             json={"overlap_hours": 1})
    second = zeta_credentials(await rotated.json())
    # zeta's own webhook endpoint, its signing secret rotated: two sign for an hour.
    hook = await app.post("/v3/account/webhooks", headers=second,
                          json={"url": f"{receiver.base}/zeta", "description": "zeta's"})
    endpoint = (await hook.json())["endpoint"]["id"]
    assert (await app.post(f"/v3/account/webhooks/{endpoint}/secret", headers=second,
                           json={"overlap_hours": 1})).status == 200
    await app.close()

    # On SQLite again, without drainers: an image stays queued, claimed by a
    # process that was then killed, and its "delivered" arrives before it is sent.
    held = await aiohttp_client(create_app(config, Roles(drainers=False)))
    image = await queued(await send(held, "single", "image", {"number": M, "image": b64(PNG)},
                                    instance=2))
    claimed = await held.app[store_key].claim_outbound(time.time(), 10, 600.0,
                                                       holder="killed-host:4242:dead")
    assert [row.id for row in claimed] == [image]
    # Graph numbers its answers: the upload takes the next number, the message the one after.
    wamid = f"wamid.TEST{len(graph_state.requests) + 2}"
    assert (await post_signed(held, meta_status(wamid, "delivered"))).status == 200
    before = await views(held, [shipped, image])
    assert before["usage"] == (2, 2)
    await held.close()

    code, out, err = await migrate(db, postgres.url)
    assert code == 0, err
    counts = printed_counts(out)
    assert counts == sqlite_counts(db, list(counts))
    assert counts["registrations"] == 3 and counts["groups"] == 1
    assert counts["outbound"] >= 5 and counts["early_statuses"] == 1
    assert counts["webhook_attempts"] >= 2 and counts["send_recipients"] == 2
    assert "copied" in out and "in one transaction" in out
    assert "claims cleared: 1 in outbound" in out
    assert (counts["managed_subscribers"], counts["subscriber_secrets"],
            counts["audit_log"]) == (1, 2, 4)
    assert (counts["stored_endpoints"], counts["stored_endpoint_secrets"]) == (1, 2)
    assert "not copied:" in out

    # On PostgreSQL, drainers off: the same answers everywhere.
    pg_config = on_postgres(config, postgres.url)
    look = await aiohttp_client(create_app(pg_config, Roles(drainers=False)))
    after = await views(look, [shipped, image])
    assert after == before
    assert [e["action"] for e in after["audit"]["entries"]] == [
        "endpoint.secret_rotated", "endpoint.created", "secret.rotated", "subscriber.created"]
    [zeta_hook] = look.app[holder_key].current.config.subscribers["zeta"].webhooks
    assert zeta_hook.key == endpoint and len(zeta_hook.signing_secrets(time.time())) == 2
    for zeta_secret in (first, second):  # the rotation's overlap carried over
        await get_json(look, "/v3/account", headers=zeta_secret)
    [reply_now] = [d for d in after["deliveries"] if d["id"] == reply["id"]]
    assert [a["outcome"] for a in reply_now["attempt_log"]] == ["retry", "failed"]
    assert reply_now["attempt_log"][0]["response_body"] == "answer 503"
    assert [(e["subscriber"], e["status"]) for e in after["endpoints"]["endpoints"]] == [
        ("acme", "failing"), ("zeta", "ok")]
    [gone_now] = [r for r in after["registrations"]["registrations"] if r["number"] == V]
    assert gone_now["status"] == "opted_out" and gone_now["opted_out_at"]
    assert [s["status"] for s in after["statuses"]] == ["sent", "queued"]
    shipped_history = [h["status"] for h in after["statuses"][0]["history"]]
    assert shipped_history[0] == "queued" and shipped_history[-1] == "sent"  # copied too
    await look.close()

    # On PostgreSQL, everything running: the claimed image goes at once, with
    # its bytes, and takes the status that came early.
    pg = await aiohttp_client(create_app(pg_config))

    async def image_status() -> str:
        body = await get_json(pg, f"/v3/whatsapp/messages/{image}",
                              headers={"X-WM-CLIENT-ID": "dev@acme.example",
                                       "X-WM-CLIENT-SECRET": "acme-secret"})
        return str(body["status"])

    await wait_for(lambda: _equals(image_status(), "delivered"), 10)
    assert graph_state.uploads[-1].form is not None
    assert graph_state.uploads[-1].form["file"]["bytes"] == PNG
    assert graph_state.messages[-1].json["to"] == M
    # The quota carried over: 2 of 4 messages, 2 of 3 recipients used.
    assert await usage(pg) == (2, 2)
    family = await queued(await send(pg, "group", "text", {"group_name": "family",
                                                           "message": "Dinner at 8"}))
    await queued(await send(pg, "single", "text", {"number": U, "message": "one more"}))
    over = await send(pg, "single", "text", {"number": U, "message": "one too many"})
    assert over.status == 469, await over.text()
    gone = await send(pg, "single", "text", {"number": V, "message": "are you there?"})
    assert gone.status == 472 and (await gone.json())["error"] == "not_registered"
    assert await usage(pg) == (4, 3)
    [to_family] = [m for m in await outbox(pg) if m["id"] == family]
    assert to_family["group"] == {"id": FAMILY["id"], "name": "Family"}
    assert to_family["status"] == "sent"


def zeta_credentials(issued: dict[str, Any]) -> dict[str, str]:
    return {"X-WM-CLIENT-ID": issued["client_id"], "X-WM-CLIENT-SECRET": issued["secret"]}


async def _equals(coro: Awaitable[str], value: str) -> bool:
    return (await coro) == value


async def small_store(aiohttp_client: AppClient, config: Config) -> Path:
    """A SQLite store with one registered user and their confirmation."""
    app = await aiohttp_client(create_app(config))
    await say(app, "Hola", sender=U)
    await wait_sent(app)
    await app.close()
    return Path(config.storage.sqlite_path)


async def test_refused_while_a_wagate_serves_the_file(tmp_path: Path,
                                                      postgres: Backend) -> None:  # noqa: F811
    port = free_port()
    config = write_config(tmp_path, port)
    proc = await asyncio.to_thread(start_service, config, port)
    try:
        db = tmp_path / "wagate.db"
        code, out, err = await migrate(db, postgres.url)
        assert code == 1 and out == ""
        assert err == in_use(db, proc.pid) + "\n"
        assert await target_tables(postgres) == []
        assert proc.poll() is None  # the running service is untouched
    finally:
        await asyncio.to_thread(stop_service, proc)
    assert proc.returncode == 0


async def test_refused_when_the_target_holds_data(
        aiohttp_client: AppClient, make_config: Callable[..., Config],
        postgres: Backend) -> None:  # noqa: F811
    config = make_config()
    db = await small_store(aiohttp_client, config)
    # Someone already started wagate on PostgreSQL, and a user registered there.
    pg = await aiohttp_client(create_app(on_postgres(config, postgres.url)))
    await say(pg, "Hallo", sender="+4915112345678")
    await wait_sent(pg)
    code, out, err = await migrate(db, postgres.url)
    assert code == 1 and out == ""
    assert err.startswith(f"error: {postgres.url} already holds data (registrations 1, ")
    assert "copies into an empty store only" in err and err.count("\n") == 1
    listed = await get_json(pg, "/admin/registrations", headers=ADMIN)
    assert [r["number"] for r in listed["registrations"]] == ["+4915112345678"]


async def test_a_dry_run_counts_and_writes_nothing(
        aiohttp_client: AppClient, make_config: Callable[..., Config],
        postgres: Backend) -> None:  # noqa: F811
    db = await small_store(aiohttp_client, make_config())
    code, out, err = await migrate(db, postgres.url, "--dry-run")
    assert code == 0, err
    assert out.startswith("dry run: ") and "would copy" in out and "(nothing written)" in out
    counts = printed_counts(out)
    assert counts == sqlite_counts(db, list(counts))
    assert counts["registrations"] == 1 and counts["outbound"] == 1
    assert await target_tables(postgres) == []
    # and the real copy afterwards finds the target as it was: empty
    code, out, err = await migrate(db, postgres.url)
    assert code == 0, err
    assert printed_counts(out) == counts


async def test_a_copy_that_fails_half_way_writes_nothing(
        aiohttp_client: AppClient, make_config: Callable[..., Config],
        postgres: Backend) -> None:  # noqa: F811
    db = await small_store(aiohttp_client, make_config())
    # A log row PostgreSQL cannot hold (text with NUL; the service refuses such
    # input, an old or hand-edited file may have it), in a table copied after others.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE inbound SET text = 'Ho' || char(0) || 'la'")
    code, out, err = await migrate(db, postgres.url)
    assert code == 1 and out == ""
    assert err.startswith(f"error: nothing was written to {postgres.url}: ")
    assert await target_tables(postgres) == []  # not even the schema


async def test_only_sqlite_to_postgresql(tmp_path: Path) -> None:
    code, _, err = await migrate(tmp_path / "none.db", "postgresql://postgres@127.0.0.1/x")
    assert code == 1 and err == f"error: no SQLite database at {tmp_path / 'none.db'}\n"
    done = await asyncio.to_thread(wagate, "migrate-store", "--from", "postgresql://a/b",
                                   "--to", "postgresql://c/d", check=False)
    assert done.returncode == 1
    assert done.stderr == "error: --from must be sqlite:///PATH, not 'postgresql://a/b'\n"

