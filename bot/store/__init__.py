"""The store: every read and write of durable state goes through here.

Callers speak in units of work (`commit_inbound`, `claim_outbound`, ...); each
unit is one transaction and, for SQLite, one hop to the store's thread. A
PostgreSQL store implements the same `Store` protocol.
"""

from bot.store.models import (
    InboundContext,
    MessageLogRow,
    OutboundRow,
    Registration,
)
from bot.store.protocol import Store
from bot.store.sqlite import SqliteStore

__all__ = ["InboundContext", "MessageLogRow", "OutboundRow", "Registration", "SqliteStore",
           "Store"]
