"""Shared fixtures: real app, real SQLite file, real local HTTP servers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.config import Config
from bot.config.load import load_config
from bot.web.operations import UNDECLARED_ERROR
from tests.graph import GraphState, graph_app, graph_state_key

if TYPE_CHECKING:
    from tests.webhook_helpers import Receiver



class _Undeclared(logging.Handler):
    """Collects the error middleware's complaints about errors a route raised
    without declaring them (bot.web.errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if UNDECLARED_ERROR in record.getMessage():
            self.seen.append(record.getMessage())


@pytest.fixture(autouse=True)
def every_error_raised_is_declared() -> Any:
    """Any test whose requests make a route raise an error its operation does
    not declare fails: the document would not name it."""
    handler = _Undeclared()
    logger = logging.getLogger("wagate.http")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    assert handler.seen == [], "errors raised but not declared (add them to the route's " \
        f"operation): {handler.seen}"


ADMIN_TOKEN = "test-admin-token"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token"
PNID = "109876543210"
ROOT = Path(__file__).resolve().parent.parent


def base_config(db: Path, graph_url: str = "http://127.0.0.1:9", extra: str = "") -> str:
    return textwrap.dedent(f"""
        [server]
        host = "127.0.0.1"
        port = 0

        [storage]
        url = "sqlite:///{db}"

        [admin]
        token = "{ADMIN_TOKEN}"

        [defaults]
        locale = "en"
        auto_reply_interval = 60

        [locales]
        dir = "{ROOT / 'locales'}"

        [meta]
        app_secret = "{APP_SECRET}"
        verify_token = "{VERIFY_TOKEN}"
        access_token = "{ACCESS_TOKEN}"
        graph_base_url = "{graph_url}"
        api_version = "v21.0"

        [outbound]
        retry_base = 0.05
        retry_max = 0.2

        [[instances]]
        id = 1
        number = "+15550001111"
        provider = "sandbox"

        [[instances]]
        id = 2
        number = "+15550002222"
        provider = "meta"
        phone_number_id = "{PNID}"
    """) + textwrap.dedent(extra)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "wagate.toml"


@pytest.fixture
async def graph(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    return await aiohttp_server(graph_app(ACCESS_TOKEN))


@pytest.fixture
def graph_state(graph: TestServer) -> GraphState:
    return graph.app[graph_state_key]


@pytest.fixture
def make_config(tmp_path: Path, config_path: Path, graph: TestServer) -> Callable[..., Config]:
    def make(extra: str = "") -> Config:
        config_path.write_text(base_config(tmp_path / "wagate.db",
                                           str(graph.make_url("")).rstrip("/"), extra))
        return load_config(config_path)
    return make


@pytest.fixture
async def make_client(aiohttp_client: Callable[..., Awaitable[TestClient]],
                      make_config: Callable[..., Config]) -> Callable[..., Awaitable[TestClient]]:
    async def make(extra: str = "") -> TestClient:
        return await aiohttp_client(create_app(make_config(extra)))
    return make


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    return await make_client()


@pytest.fixture
async def receiver(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Receiver:
    """A real webhook receiver on loopback (see tests/webhook_helpers.py)."""
    from tests.webhook_helpers import Receiver  # it imports this module's helpers

    recv = Receiver()
    server = await aiohttp_server(recv.app())
    recv.base = str(server.make_url("")).rstrip("/")
    return recv


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def mail_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """A real SMTP server on loopback, STARTTLS and a login (tests/mail_helpers.py)."""
    from tests.mail_helpers import serving  # aiosmtpd: only where mail is tested
    async with serving(tmp_path, monkeypatch) as server:
        yield server


async def say(client: TestClient, text: str, sender: str = "+34600000001", instance: int = 1,
              **extra: Any) -> dict[str, Any]:
    resp = await client.post("/sandbox/inbound", headers=ADMIN,
                             json={"instance": instance, "from": sender, "text": text, **extra})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def outbox(client: TestClient, to: str | None = None,
                 settle: bool = True) -> list[dict[str, Any]]:
    if settle:
        await wait_sent(client)
    params = {"to": to} if to else {}
    resp = await client.get("/sandbox/outbox", headers=ADMIN, params=params)
    assert resp.status == 200
    return (await resp.json())["messages"]


async def wait_sent(client: TestClient, timeout: float = 5.0) -> None:
    """Wait until the outbound worker has nothing queued."""
    from bot.web.keys import store_key

    store = client.app[store_key]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        depth, _ = await store.queue_depth()
        if depth == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("outbound queue did not drain")


async def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_signed(client: TestClient, payload: Any, *, secret: str = APP_SECRET,
                      headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    return await client.post("/webhooks/meta", data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret),
        **(headers or {})})


def meta_text(text: str, sender: str = "34600000001", msg_id: str | None = None,
              pnid: str = PNID, name: str = "Ana", **extra: Any) -> dict[str, Any]:
    """A WhatsApp Cloud API webhook payload with one text message."""
    message = {"from": sender, "id": msg_id or f"wamid.{time.monotonic_ns()}",
               "timestamp": str(int(time.time())), "type": "text", "text": {"body": text},
               **extra}
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550002222", "phone_number_id": pnid},
            "contacts": [{"profile": {"name": name}, "wa_id": sender}],
            "messages": [message]}}]}]}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests (marked slow: real processes, a browser, fuzzing) first,
    the longest (`slow(seconds)`) before the others: under pytest-xdist
    (`make test`) none then starts last and runs alone."""
    def weight(item: pytest.Item) -> float:
        mark = item.get_closest_marker("slow")
        return 0.0 if mark is None else float(mark.args[0]) if mark.args else 1.0

    items.sort(key=weight, reverse=True)  # stable: the rest keep their order


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly when the browser or broker tests did not run."""
    from tests.brokers import BROKERS_SKIP
    from tests.test_ui_browser import BROWSER_SKIP

    brokers = [r for r in terminalreporter.stats.get("skipped", [])
               if BROKERS_SKIP in str(getattr(r, "longrepr", ""))]
    if brokers:
        terminalreporter.write_sep("!", f"{len(brokers)} BROKER TESTS DID NOT RUN", red=True,
                                   bold=True)
        terminalreporter.write_line("Start NATS (with JetStream), RabbitMQ and Redis on their "
                                    "default ports to run them; CI sets "
                                    "WAGATE_TEST_BROKERS_REQUIRED=1 so they must run there.",
                                    yellow=True)

    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if BROWSER_SKIP in str(getattr(r, "longrepr", ""))]
    if skipped:
        reason = str(skipped[0].longrepr[-1]) if isinstance(skipped[0].longrepr, tuple) else ""
        terminalreporter.write_sep("!", f"{len(skipped)} BROWSER TESTS DID NOT RUN", red=True,
                                   bold=True)
        terminalreporter.write_line(reason or BROWSER_SKIP, yellow=True)
        terminalreporter.write_line("Install Chromium (apt-get install -y chromium) to run "
                                    "them; CI sets WAGATE_TEST_BROWSER_REQUIRED=1 so they "
                                    "must run there.", yellow=True)
