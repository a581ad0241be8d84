"""Nothing a client sends can forge a line of the text log, and webhook URLs
are logged without their query (where people put tokens)."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp.test_utils import TestClient

from bot.logs import RequestIdFilter, TextFormatter, escape_controls, url_for_log
from tests.conftest import ADMIN, say
from tests.webhook_helpers import Receiver, settled, subscribers_toml

FORGED = "2026-01-01 00:00:00,000 INFO    wagate.ui [-]: dashboard: admin logged in"
# The start of every record of the text format, and nothing else's.
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR)")


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """What `wagate serve` writes in its text format, captured."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(logging.Filter("wagate"))  # the test server's access log is not serve's
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def records(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


async def test_a_forged_line_in_a_path_stays_inside_its_record(client: TestClient,
                                                               text_log: io.StringIO) -> None:
    forged = "x%0d%0a" + FORGED.replace(" ", "%20") + "%1b%5b31m%e2%80%a8%c2%85"
    resp = await client.get(f"/admin/registrations/{forged}")
    assert resp.status == 401
    lines = records(text_log)
    assert len(lines) == 1, lines  # one event, one line
    assert RECORD_START.match(lines[0]) and "WARNING" in lines[0]
    assert "x\\r\\n2026-01-01 00:00:00,000 INFO" in lines[0]
    assert "\\x1b[31m" in lines[0] and "\\u2028" in lines[0] and "\\x85" in lines[0]
    assert "\x1b" not in text_log.getvalue() and "\r" not in text_log.getvalue()


async def test_control_characters_in_a_body_stay_inside_their_record(
        client: TestClient, text_log: io.StringIO) -> None:
    # A provider's message id is logged when it comes again (here the sandbox's, as sent).
    forged_id = f"evil\n{FORGED}\u2029\x1b[0m"
    for _ in range(2):
        await say(client, "hello", id=forged_id)
    duplicate = [line for line in records(text_log) if "duplicate" in line]
    assert len(duplicate) == 1, records(text_log)
    assert all(RECORD_START.match(line) for line in records(text_log)), records(text_log)
    assert "evil\\n2026-01-01" in duplicate[0] and "\\u2029\\x1b[0m" in duplicate[0]


def test_a_traceback_cannot_start_a_line_of_its_own() -> None:
    record = logging.LogRecord("wagate.http", logging.ERROR, __file__, 1,
                               "unhandled error on %s", ("GET\n" + FORGED,), None)
    try:
        raise ValueError("bad value\n" + FORGED)
    except ValueError:
        record.exc_info = sys.exc_info()
    record.request_id = "-"
    text = TextFormatter().format(record)
    starts = [line for line in text.splitlines() if RECORD_START.match(line)]
    assert len(starts) == 1 and starts[0].startswith(starts[0][:23])
    assert all(line.startswith("    ") for line in text.splitlines()[1:])
    assert "ValueError: bad value" in text


def test_escapes_are_readable_and_leave_text_alone() -> None:
    assert escape_controls("Hola, 世界 👋 — fine") == "Hola, 世界 👋 — fine"
    assert escape_controls("a\r\nb\tc\x00\x7f\x9b\u2028\ud800") == \
        "a\\r\\nb\\tc\\x00\\x7f\\x9b\\u2028\\ud800"


def test_urls_for_the_log_lose_their_query_and_user_info() -> None:
    assert url_for_log("https://hooks.example/in?token=s3cret#frag") == \
        "https://hooks.example/in?…"
    assert url_for_log("https://user:pw@hooks.example:8443/a/b") == \
        "https://hooks.example:8443/a/b"
    assert url_for_log("amqp://guest:guest@[::1]:5672/vh?exchange=x") == "amqp://[::1]:5672/vh?…"
    assert url_for_log("http://[::1") == "<unparsable URL>"


async def test_webhook_urls_are_logged_without_their_query(
        make_client: Callable[..., Awaitable[TestClient]], receiver: Receiver,
        text_log: io.StringIO) -> None:
    token = "tok-3f9a1c-secret"
    client = await make_client(subscribers_toml(
        receiver.base, extra_webhooks=f'''
        [[subscribers.webhooks]]
        url = "{receiver.base}/acme-q?token={token}"
        format = "standard"
        secret = "whsec_{'A' * 44}"
        '''))
    receiver.script("/acme-q", *[(500, {}, 0.0)] * 6)
    await say(client, "Hola", instance=3)
    await settled(client, 2, subscriber="acme")
    resp = await client.get("/admin/deliveries", headers=ADMIN)
    assert resp.status == 200
    logged = text_log.getvalue()
    assert "/acme-q?…" in logged, logged
    assert token not in logged
