"""The SQLite store, by port: the engine (one connection, group commit), the
pipeline's writes (inbound), the outbound and delivery queues, sends (usage),
SQLite's own reports, the pages' sessions and the mail log; the reads both backends share
come from bot/store/queries.py."""

from __future__ import annotations

from bot.store.endpoints import EndpointQueries
from bot.store.queries import SharedQueries
from bot.store.sqlite.deliveries import SqliteDeliveries
from bot.store.sqlite.engine import MIGRATIONS
from bot.store.sqlite.inbound import SqliteInbound
from bot.store.sqlite.mail import SqliteMail
from bot.store.sqlite.media import SqliteMedia
from bot.store.sqlite.outbound import SqliteOutbound
from bot.store.sqlite.reports import SqliteReports
from bot.store.sqlite.sessions import SqliteSessions
from bot.store.sqlite.usage import SqliteUsage


class SqliteStore(SqliteInbound, SqliteOutbound, SqliteDeliveries, SqliteUsage, SqliteReports,
                  SqliteMedia, SqliteSessions, SqliteMail, EndpointQueries, SharedQueries):
    """The embedded store. Every public method is one unit of work."""


__all__ = ["MIGRATIONS", "SqliteStore"]
