"""Operations, in process: live reload (under traffic, refused files, new
locales), readiness states, metrics moving, request ids and what logs hold,
and the admin's manual opt-out."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bot import cli
from bot.app import create_app
from bot.config.load import load_config
from bot.logs import RequestIdFilter
from bot.web import health
from bot.web.keys import outbound_worker_key, store_key, workers_key
from tests.conftest import ADMIN, ROOT, outbox, say, wait_for

NEW_SUBSCRIBER = """
[[subscribers]]
id = "newco"
client_id = "dev@newco.example"
secret = "newco-secret"
plan = "enterprise"
instances = [1]
keyword = "NEWCO"
"""

# Each breaks the file in one way the issue names; the old config must stay.
BROKEN = {
    "bad_toml": ("\n[[subscribers]\nid = 'x'\n", "invalid TOML"),
    "unknown_plan": ('\n[[subscribers]]\nid = "x"\nclient_id = "x@x"\nsecret = "s"\n'
                     'plan = "gold"\n', "subscribers[0].plan: unknown plan 'gold'"),
    "duplicate_id": ('\n[[instances]]\nid = 1\nnumber = "+15550003333"\n',
                     "instances[2].id: duplicate instance id 1"),
    "bad_url": ('\n[[subscribers]]\nid = "x"\nclient_id = "x@x"\nsecret = "s"\n'
                'plan = "enterprise"\n[[subscribers.webhooks]]\nurl = "ftp://nope"\n'
                'secret = "whsec_abc"\n',
                "webhooks[0].url: 'ftp://nope' is not an http(s), nats, amqp or redis URL"),
    "missing_secret": ('\n[[subscribers]]\nid = "x"\nclient_id = "x@x"\n'
                       'secret_env = "WAGATE_TEST_UNSET_VARIABLE"\nplan = "enterprise"\n',
                       "secret_env: environment variable WAGATE_TEST_UNSET_VARIABLE is not set"),
}


def read(path: Path) -> str:
    return path.read_text()


def write(path: Path, text: str) -> None:
    # Write then rename, as an editor does: a reload never reads half a file.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


async def reload(client: TestClient) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/admin/reload", headers=ADMIN)
    return resp.status, await resp.json()


async def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# ------------------------------------------------------------------ reload


async def test_reload_under_concurrent_traffic(client: TestClient, config_path: Path) -> None:
    """Senders run all through several reloads (one of them refused): no request
    fails, and a subscriber added to the file works right after its reload."""
    original = read(config_path)
    stop = asyncio.Event()
    failures: list[str] = []
    sent = 0

    async def traffic(worker: int) -> None:
        nonlocal sent
        n = 0
        while not stop.is_set():
            n += 1
            resp = await client.post("/sandbox/inbound", headers=ADMIN, json={
                "instance": 1, "from": f"+3460{worker:02d}{n:05d}",
                "text": "Hola" if n % 2 else "what is this?"})
            if resp.status != 200:
                failures.append(f"{resp.status} {await resp.text()}")
            sent += 1

    senders = [asyncio.create_task(traffic(w)) for w in range(4)]
    try:
        generations = []
        for round_ in range(6):
            await asyncio.sleep(0.05)
            if round_ == 3:
                write(config_path, original + BROKEN["unknown_plan"][0])
                status, body = await reload(client)
                assert status == 422 and "unknown plan 'gold'" in body["error_message"]
                continue
            write(config_path, original + (NEW_SUBSCRIBER if round_ % 2 else ""))
            status, body = await reload(client)
            assert status == 200, body
            generations.append(body["generation"])
        write(config_path, original + NEW_SUBSCRIBER)
        status, body = await reload(client)
        assert status == 200
        await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*senders)
    assert not failures, failures[:3]
    assert sent > 20
    assert generations == sorted(generations) and body["generation"] == 7
    # The new subscriber is in force at once: its keyword registers users for it.
    summary = await (await client.get("/admin/config", headers=ADMIN)).json()
    assert "newco" in [s["id"] for s in summary["subscribers"]]
    await say(client, "Hola NEWCO", sender="+34699999999")
    regs = await (await client.get("/admin/registrations/+34699999999", headers=ADMIN)).json()
    assert regs["registrations"][0]["keyword_subscriber"] == "newco"
    # ... and its credentials send at once; removed from the file, they stop working.
    creds = {"X-WM-CLIENT-ID": "dev@newco.example", "X-WM-CLIENT-SECRET": "newco-secret"}
    body = {"number": "+34699999999", "message": "welcome"}
    resp = await client.post("/v3/whatsapp/single/text/message/1", json=body, headers=creds)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "queued"
    write(config_path, original)
    assert (await reload(client))[0] == 200
    resp = await client.post("/v3/whatsapp/single/text/message/1", json=body, headers=creds)
    assert resp.status == 474


@pytest.mark.parametrize("case", sorted(BROKEN))
async def test_broken_file_is_refused_and_old_config_keeps_answering(
        client: TestClient, config_path: Path, case: str, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    broken, expected = BROKEN[case]
    write(config_path, read(config_path) + broken)
    with caplog.at_level(logging.ERROR, logger="wagate.reload"):
        status, body = await reload(client)
    assert status == 422 and body["error"] == "reload_refused"
    assert expected in body["error_message"]
    # One precise log line: the file, the line (where TOML has one) and the key.
    [line] = [r.getMessage() for r in caplog.records if r.name == "wagate.reload"]
    assert f"{config_path}:" in line and expected in line and "old config stays" in line
    if case != "bad_toml":  # TOML's own errors say "(at line N, column M)"
        assert _line_no(line, config_path).isdigit(), line
    # The old config keeps answering.
    await say(client, "Hola", sender="+34600000077")
    assert any(m["to"] == "+34600000077" for m in await outbox(client))
    summary = await (await client.get("/admin/config", headers=ADMIN)).json()
    assert summary["generation"] == 1
    # check-config, offline, says the same.
    assert cli.main(["check-config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and line.split("in force: ", 1)[1] in err


def _line_no(line: str, path: Path) -> str:
    return line.split(f"{path}:", 1)[1].split(":", 1)[0]


async def test_new_locale_folder_answers_after_reload(
        tmp_path: Path, config_path: Path, make_config: Callable[..., Any],
        aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    locales = tmp_path / "locales"
    shutil.copytree(ROOT / "locales", locales, ignore=shutil.ignore_patterns("it"))
    make_config()
    write(config_path, read(config_path).replace(str(ROOT / "locales"), str(locales)))
    client = await aiohttp_client(create_app(load_config(config_path)))
    await say(client, "Ciao", sender="+393331234567")
    assert (await client.get("/admin/registrations/+393331234567", headers=ADMIN)).status == 200
    regs = await (await client.get("/admin/registrations/+393331234567", headers=ADMIN)).json()
    assert regs == {"registrations": []}  # no Italian yet: not a greeting

    shutil.copytree(ROOT / "locales" / "it", locales / "it")
    status, body = await reload(client)
    assert status == 200, body
    await say(client, "Ciao", sender="+393331234568")
    regs = await (await client.get("/admin/registrations/+393331234568", headers=ADMIN)).json()
    assert regs["registrations"][0]["locale"] == "it"
    # A broken catalog in a new folder is refused, the rest stays in force.
    shutil.copytree(ROOT / "locales" / "es", locales / "ca")
    (locales / "ca" / "LC_MESSAGES" / "messages.po").write_text("msgid \"x\"\nmsgstr \"y\"\n")
    status, body = await reload(client)
    assert status == 422 and "ca" in body["error_message"]
    await say(client, "Ciao", sender="+393331234569")
    regs = await (await client.get("/admin/registrations/+393331234569", headers=ADMIN)).json()
    assert regs["registrations"][0]["locale"] == "it"


async def test_reloads_are_serialized_and_coalesced(client: TestClient,
                                                    config_path: Path) -> None:
    from bot.web.keys import reloader_key
    from bot.web.snapshot import holder_key

    reloader = client.app[reloader_key]
    write(config_path, read(config_path) + NEW_SUBSCRIBER)
    for _ in range(10):
        reloader.request()
    await wait_for(lambda: reloader._task is not None and reloader._task.done())
    holder = client.app[holder_key]
    assert 2 <= holder.generation <= 3  # one running plus at most one coalesced
    assert "newco" in holder.current.config.subscribers


# ------------------------------------------------------------------ health


async def test_readyz_states(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json()) == {"status": "ready", "config_generation": 1}

    store = client.app[store_key]

    async def broken_ping() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "ping", broken_ping)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["reasons"] == ["store: OperationalError"]

    async def hanging_ping() -> None:
        await asyncio.sleep(10)

    monkeypatch.setattr(store, "ping", hanging_ping)
    monkeypatch.setattr(health, "PING_TIMEOUT", 0.05)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["reasons"] == ["store: no answer within 0.05s"]
    monkeypatch.undo()

    worker = client.app[outbound_worker_key]
    worker.stop()
    await wait_for(lambda: not worker.running)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["reasons"] == ["outbound worker not running"]
    assert (await client.get("/healthz")).status == 200  # alive all the same

    workers = client.app[workers_key]
    saved = dict(workers)
    workers.clear()
    resp = await client.get("/readyz")
    assert (await resp.json())["reasons"] == ["workers: none started"]
    workers.update(saved)


async def test_readyz_when_the_store_is_closed(
        make_config: Callable[..., Any],
        aiohttp_client: Callable[..., Awaitable[TestClient]]) -> None:
    app = create_app(make_config())
    client = await aiohttp_client(app)
    store = app[store_key]
    worker = app[outbound_worker_key]
    worker.stop()
    await wait_for(lambda: not worker.running)
    await store.close()
    resp = await client.get("/readyz")
    assert resp.status == 503
    reasons = (await resp.json())["reasons"]
    assert reasons[0].startswith("store: ") and "outbound worker not running" in reasons

    async def nothing(*_: object) -> None:
        return None

    # The app's cleanup would release claims on the closed store: already done.
    store.release_claims = nothing  # type: ignore[method-assign]
    store.close = nothing  # type: ignore[method-assign]


# ------------------------------------------------------------------ metrics


async def test_metrics_move(client: TestClient, config_path: Path) -> None:
    before = await scrape(client)
    assert sample(before, "wagate_config_generation") == 1
    await say(client, "Hola", sender="+34600000001", id="m-1")
    await say(client, "Hola", sender="+34600000001", id="m-1")  # redelivery
    await say(client, "ALTO", sender="+34600000001")
    await outbox(client)
    resp = await client.get("/no/such/path/+34600000001")
    assert resp.status == 404
    write(config_path, read(config_path) + BROKEN["unknown_plan"][0])
    assert (await reload(client))[0] == 422
    write(config_path, read(config_path).replace(BROKEN["unknown_plan"][0], ""))
    assert (await reload(client))[0] == 200

    after = await scrape(client)
    assert sample(after, "wagate_inbound_events_total", provider="sandbox", kind="text") == 2
    assert sample(after, "wagate_inbound_duplicates_total", provider="sandbox") == 1
    assert sample(after, "wagate_registrations_total", locale="es", event="registered") == 1
    assert sample(after, "wagate_registrations_total", locale="es", event="opted_out") == 1
    assert sample(after, "wagate_outbound_results_total", provider="sandbox",
                  outcome="sent") == 2
    assert sample(after, "wagate_reloads_total", outcome="ok") == 1
    assert sample(after, "wagate_reloads_total", outcome="refused") == 1
    assert sample(after, "wagate_config_generation") == 2
    assert sample(after, "wagate_http_request_duration_seconds_count", method="POST",
                  route="/sandbox/inbound", status="200") == 3
    # Routes by template, never by raw path (bounded series, no numbers in labels).
    assert sample(after, "wagate_http_request_duration_seconds_count", method="GET",
                  route="<unmatched>", status="404") == 1
    assert not any("+34600000001" in str(labels) for _, labels in after)
    assert sample(after, "wagate_outbound_queue_depth") == 0


async def test_queue_gauges_read_at_scrape_time(client: TestClient) -> None:
    worker = client.app[outbound_worker_key]
    worker.stop()
    await wait_for(lambda: not worker.running)
    await say(client, "Hola", sender="+34600000002")
    await say(client, "Hallo", sender="+4915112345678")
    await asyncio.sleep(0.05)
    samples = await scrape(client)
    assert sample(samples, "wagate_outbound_queue_depth") == 2
    assert sample(samples, "wagate_outbound_queue_oldest_age_seconds") >= 0.04


async def test_metrics_needs_no_token_and_holds_no_secret(client: TestClient) -> None:
    await say(client, "Hola")
    text = await (await client.get("/metrics")).text()
    for secret in ("test-admin-token", "test-app-secret", "test-access-token", "Hola"):
        assert secret not in text


# ------------------------------------------------------------------ logs


async def test_request_id_echoed_and_in_every_log_line(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        resp = await client.post("/sandbox/inbound", headers={**ADMIN, "X-Request-Id": "abc-123"},
                                 json={"instance": 1, "from": "+34600000001", "text": "Hola"})
        assert resp.headers["X-Request-Id"] == "abc-123"
        bad = await client.get("/healthz", headers={"X-Request-Id": "x" * 100})
        assert bad.headers["X-Request-Id"] != "x" * 100 and len(bad.headers["X-Request-Id"]) == 32
        evil = await client.get("/healthz", headers={"X-Request-Id": "a b\tc"})
        assert evil.headers["X-Request-Id"] != "a b\tc"
        fresh = await client.get("/nope")
        assert len(fresh.headers["X-Request-Id"]) == 32  # on error answers too
    [inbound] = [r for r in caplog.records if r.getMessage().startswith("inbound ")]
    assert inbound.request_id == "abc-123"  # type: ignore[attr-defined]


async def test_no_body_and_no_secret_in_logs_at_info(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        await say(client, "my private words zebra")
        await say(client, "Hola zebra-two")
        await outbox(client)
        for auth in ("Bearer guess-one-zebra", "Basic Z3Vlc3M=", "Bearer"):
            resp = await client.get("/admin/registrations", headers={"Authorization": auth})
            assert resp.status == 401
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "zebra" not in text and "Z3Vlc3M" not in text and "test-admin-token" not in text
    refused = [r for r in caplog.records if "unauthorized" in r.getMessage()]
    assert len(refused) == 3 and all(r.levelno == logging.WARNING for r in refused)


async def test_json_log_lines_carry_the_request_id() -> None:
    import json

    from bot.logs import JsonFormatter, request_id

    token = request_id.set("rid-1")
    try:
        record = logging.LogRecord("wagate", logging.INFO, __file__, 1, "hello %s", ("x",), None)
        RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == "rid-1" and entry["message"] == "hello x"


# ------------------------------------------------------------------ admin opt-out


async def test_admin_opts_a_number_out_by_hand(client: TestClient) -> None:
    await say(client, "Hola", sender="+34600000001")
    url = "/admin/registrations/+34 600-000-001/opt-out"
    assert (await client.post(url)).status == 401
    resp = await client.post(url, headers=ADMIN, json={"instance": 1})
    assert resp.status == 200
    body = await resp.json()
    assert body["changed"] == 1
    [reg] = body["registrations"]
    assert reg["number"] == "+34600000001" and reg["status"] == "opted_out"
    assert reg["locale"] == "es"  # kept
    again = await (await client.post(url, headers=ADMIN, params={"instance": "1"})).json()
    assert again["changed"] == 0
    # Without an instance: every configured one, recorded even where it never wrote.
    everywhere = await (await client.post(url, headers=ADMIN)).json()
    assert [(r["instance"], r["status"]) for r in everywhere["registrations"]] == [
        (1, "opted_out"), (2, "opted_out")]
    assert everywhere["changed"] == 1
    assert (await client.post(url, headers=ADMIN, json={"instance": 9})).status == 404
    assert (await client.post(url, headers=ADMIN, json={"instance": "1"})).status == 400
    assert (await client.post("/admin/registrations/hello/opt-out", headers=ADMIN)).status == 400
    # Saying Hi again brings the user back.
    await say(client, "Hola", sender="+34600000001")
    regs = await (await client.get("/admin/registrations/+34600000001", headers=ADMIN)).json()
    assert regs["registrations"][0]["status"] == "active"
    samples = await scrape(client)
    assert sample(samples, "wagate_registrations_total", locale="es", event="opted_out") == 1


async def test_config_summary_holds_no_secret(client: TestClient) -> None:
    resp = await client.get("/admin/config", headers=ADMIN)
    assert resp.status == 200
    text = await resp.text()
    for secret in ("test-admin-token", "test-app-secret", "test-access-token",
                   "test-verify-token"):
        assert secret not in text
    body = await resp.json()
    assert body["generation"] == 1 and [i["id"] for i in body["instances"]] == [1, 2]
    assert (await client.get("/admin/config")).status == 401
