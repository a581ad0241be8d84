"""The store: every read and write of durable state goes through here.

Callers speak in units of work (`commit_inbound`, `claim_outbound`, ...); each
unit is one transaction. `open_store(url)` picks the backend by the URL's
scheme: SQLite (embedded, one process) or PostgreSQL (shared by several).
"""

from __future__ import annotations

from bot.config.types import POSTGRES_SCHEMES, SQLITE_SCHEME, postgres_driver_missing
from bot.store.models import (
    InboundContext,
    MessageLogRow,
    OutboundRow,
    Registration,
)
from bot.store.protocol import Store, StoreUnavailable
from bot.store.sqlite import SqliteStore


async def open_store(url: str, *, pool_size: int = 10, worker_id: str | None = None) -> Store:
    """Open the store `url` names: `sqlite:///PATH` or `postgresql://...`.
    PostgreSQL: at most `pool_size` connections; `worker_id` names this
    process's claims (unique per process by default; SQLite has one process).
    Any other scheme was refused when the config was read."""
    if url.startswith(SQLITE_SCHEME):
        return await SqliteStore.open(url.removeprefix(SQLITE_SCHEME))
    if url.startswith(POSTGRES_SCHEMES):
        # Imported here: the driver (the `postgres` extra) loads only where
        # PostgreSQL is used.
        if missing := postgres_driver_missing():
            raise StoreUnavailable(missing)
        from bot.store.postgres import PostgresStore
        return await PostgresStore.open(url, pool_size=pool_size, worker_id=worker_id)
    raise ValueError(f"unsupported storage url {url!r}: use sqlite:///PATH or postgresql://...")

__all__ = ["InboundContext", "MessageLogRow", "OutboundRow", "Registration", "SqliteStore",
           "Store", "StoreUnavailable", "open_store"]
