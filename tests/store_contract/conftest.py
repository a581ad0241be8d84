"""The store contract: one suite over every backend.

`backend` runs a test once on SQLite (a file in tmp_path) and once on
PostgreSQL (a fresh schema on the server at WAGATE_TEST_POSTGRES_URL, dropped
after; a schema, not a database, because creating one costs milliseconds).
When that server cannot be reached the PostgreSQL runs are skipped, with the
URL in each skip reason and a warning in the terminal summary; with
WAGATE_TEST_POSTGRES_REQUIRED=1 (as CI sets it) they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from bot.config import Config
from bot.config.load import load_config
from bot.store import Store, open_store
from tests.conftest import base_config

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
unreachable_key = pytest.StashKey[str]()


def postgres_url() -> str:
    return os.environ.get("WAGATE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_required() -> bool:
    return os.environ.get("WAGATE_TEST_POSTGRES_REQUIRED") == "1"


@dataclass(slots=True)
class PostgresServer:
    url: str
    schemas: list[str]  # made by tests, dropped at the session's end


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """The test server, once it answered; skips (or fails) otherwise. The
    schemas the tests made are dropped at the end, when no service of a test
    (torn down in whatever order) can still be using one."""
    url = postgres_url()

    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"PostgreSQL unreachable at {url}: {exc}"
        if postgres_required():
            pytest.fail(f"{reason} (WAGATE_TEST_POSTGRES_REQUIRED=1)")
        request.config.stash[unreachable_key] = reason
        # Loud (a warning in the terminal summary below); CI sets
        # WAGATE_TEST_POSTGRES_REQUIRED=1, so there it fails instead.
        pytest.skip(reason)
    server = PostgresServer(url=url, schemas=[])
    yield server

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            for schema in server.schemas:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()

    asyncio.run(drop())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    # From the skip reports, not only the stash: under pytest-xdist the
    # fixture ran in a worker, and this summary is the controller's.
    reason = config.stash.get(unreachable_key, None)
    for report in terminalreporter.stats.get("skipped", []):
        if reason is None and "PostgreSQL unreachable at" in str(report.longrepr):
            longrepr = report.longrepr
            reason = str(longrepr[-1]) if isinstance(longrepr, tuple) else str(longrepr)
            reason = reason.removeprefix("Skipped: ")
    if reason is not None:
        terminalreporter.write_line(
            f"WARNING: the PostgreSQL store tests were SKIPPED. {reason}. Start PostgreSQL "
            "or set WAGATE_TEST_POSTGRES_URL; WAGATE_TEST_POSTGRES_REQUIRED=1 makes this fail.",
            yellow=True, bold=True)


@dataclass(frozen=True, slots=True)
class Backend:
    name: str  # sqlite | postgres
    url: str  # what `[storage] url` says

    async def open(self) -> Store:
        return await open_store(self.url)


@pytest.fixture
async def postgres(postgres_server: PostgresServer) -> Backend:
    """PostgreSQL alone, in a fresh schema: for what only a shared database has."""
    schema = f"wagate_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(postgres_server.url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    postgres_server.schemas.append(schema)
    joiner = "&" if "?" in postgres_server.url else "?"
    return Backend("postgres", f"{postgres_server.url}{joiner}search_path={schema}")


@pytest.fixture
async def own_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A database of the test's own (its url), for what is per database: NOTIFY's
    channels, the advisory locks in pg_locks (other tests' schemas share the
    test database and their chats' keys)."""
    name = f"wagate_own_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(postgres_server.url)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(postgres_server.url)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", f"sqlite:///{tmp_path / 'wagate.db'}")
    return request.getfixturevalue("postgres")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = await backend.open()
    yield opened
    await opened.close()


@pytest.fixture
def media_storage(backend: Backend) -> str:
    """tests/test_media.py's app, on this test's backend."""
    return backend.url


@pytest.fixture
def make_config(tmp_path: Path, config_path: Path, graph: TestServer,
                backend: Backend) -> Callable[..., Config]:
    """tests/conftest.py's config, on this test's backend: the app tests here run
    through create_app on each."""
    def make(extra: str = "") -> Config:
        text = base_config(tmp_path / "wagate.db", str(graph.make_url("")).rstrip("/"), extra)
        sqlite_line = f'url = "sqlite:///{tmp_path / "wagate.db"}"'
        assert sqlite_line in text
        config_path.write_text(text.replace(sqlite_line, f'url = "{backend.url}"'))
        return load_config(config_path)
    return make

