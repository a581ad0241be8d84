"""The PostgreSQL store, by port: the pool (connections, transactions, the
schema), the pipeline's writes (inbound), the outbound and delivery queues,
sends (usage), PostgreSQL's own reports, the pages' sessions and the mail log; the reads
both backends share come from bot/store/queries.py.

Each unit of work is one transaction on a pooled connection; what SQLite gets
from one connection, this store gets from locks held in the database, so it
holds across processes (see pool.py)."""

from __future__ import annotations

from bot.store.endpoints import EndpointQueries
from bot.store.postgres.deliveries import PostgresDeliveries
from bot.store.postgres.inbound import PostgresInbound
from bot.store.postgres.mail import PostgresMail
from bot.store.postgres.media import PostgresMedia
from bot.store.postgres.outbound import PostgresOutbound
from bot.store.postgres.pool import MIGRATIONS, default_worker_id, migrate, redacted
from bot.store.postgres.reports import PostgresReports
from bot.store.postgres.sessions import PostgresSessions
from bot.store.postgres.usage import PostgresUsage
from bot.store.queries import SharedQueries


class PostgresStore(PostgresInbound, PostgresOutbound, PostgresDeliveries, PostgresUsage,
                    PostgresReports, PostgresMedia, PostgresSessions, PostgresMail,
                    EndpointQueries,
                    SharedQueries):
    """The shared store. Every public method is one unit of work."""


__all__ = ["MIGRATIONS", "PostgresStore", "default_worker_id", "migrate", "redacted"]
