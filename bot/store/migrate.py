"""`wagate migrate-store`: copy a SQLite store into an empty PostgreSQL one.

The two schemas hold the same tables with the same columns (TEXT/REAL/BLOB
on one side, text/double precision/bytea on the other); `TABLES` maps each
column, and a column on either side that the map does not name stops the
copy before it starts, so a later migration cannot drop data silently.

- The SQLite file is read through a read-only connection, under the file's
  one-process lock (a running wagate holds it: refused), in one read
  transaction, so the copy is one consistent snapshot.
- The target's schema is created (or found current) and filled in ONE
  transaction: all of it commits, or none of it. Its tables are locked for
  the copy and must hold no rows: this copies into an empty store only.
- Rows stream in batches bounded in count and bytes (media blobs included),
  never a table at once.
- Claims are not copied: a queued message or pending delivery that a dead
  process had claimed is due at once, as a SQLite start would release it.
- Identity columns (`seq`, the order of the logs and queues) keep their
  values; their sequences continue after the highest.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bot.config.types import POSTGRES_SCHEMES, SQLITE_SCHEME
from bot.store.lock import StoreInUse, StoreLock
from bot.store.postgres import migrate as migrate_schema
from bot.store.postgres import redacted
from bot.store.sqlite import MIGRATIONS as SQLITE_MIGRATIONS

BATCH_ROWS = 500
BATCH_BYTES = 16 * 1024 * 1024  # a batch of queued media stops here, whatever its count


class MigrationRefused(Exception):
    """Why nothing was copied: one line for the operator."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]  # copied as they are
    # Columns read through an expression instead (`:now` is the copy's time).
    computed: dict[str, str] = field(default_factory=dict)
    identity: str | None = None  # the PostgreSQL identity column, if any
    claims_of: str | None = None  # the status whose rows a claim may hold

    @property
    def target_columns(self) -> tuple[str, ...]:
        return (*self.columns, *self.computed)

    def select(self) -> str:
        parts = [*self.columns, *self.computed.values()]
        order = f" ORDER BY {self.identity}" if self.identity else ""
        return f"SELECT {', '.join(parts)} FROM {self.name}{order}"


def _released(status: str) -> dict[str, str]:
    """A claim is not copied: holder and lease cleared, a claimed row due at
    once (what SQLite's start and PostgreSQL's release_claims do)."""
    return {"claimed_until": "NULL", "claimed_by": "NULL",
            "next_attempt_at": f"CASE WHEN status = '{status}' AND claimed_until IS NOT NULL"
                               " THEN MIN(next_attempt_at, :now) ELSE next_attempt_at END"}


# Every table that holds durable state, in an order that reads well in the
# report (there are no foreign keys to order by).
TABLES: tuple[Table, ...] = (
    Table("registrations", ("instance_id", "number", "locale", "status", "keyword_subscriber",
                            "keyword_at", "registered_at", "updated_at", "opted_out_at",
                            "user_id", "last_inbound_at")),
    Table("groups", ("instance_id", "group_id", "name", "name_key", "registered_at")),
    Table("inbound", ("seq", "provider", "provider_message_id", "instance_id", "sender",
                      "user_id", "group_id", "kind", "text", "received_at"), identity="seq"),
    Table("outbound", ("seq", "id", "instance_id", "to_number", "group_id", "type", "text",
                       "caption", "filename", "mime", "media", "subscriber_id", "status",
                       "attempts", "provider_message_id", "error_code", "error_title",
                       "created_at", "updated_at", "template", "pricing_category",
                       "billable"),
          computed=_released("queued"), identity="seq", claims_of="queued"),
    Table("outbound_history", ("seq", "message_id", "at", "status", "error_code",
                               "error_title"), identity="seq"),
    Table("provider_notices", ("seq", "provider", "kind", "instance_id", "event", "detail",
                               "at", "received_at"), identity="seq"),
    Table("early_statuses", ("provider_message_id", "status", "error_code", "error_title",
                             "received_at")),
    Table("auto_replies", ("instance_id", "number", "kind", "last_at")),
    Table("send_quota", ("subscriber_id", "period_start", "count")),
    Table("send_recipients", ("subscriber_id", "recipient", "first_sent_at")),
    Table("webhook_deliveries", ("seq", "id", "subscriber_id", "endpoint_key", "url", "format",
                                 "event_type", "payload", "status", "attempts",
                                 "last_status_code", "last_error", "created_at", "updated_at",
                                 "delivered_at", "media_id"),
          computed=_released("pending"), identity="seq", claims_of="pending"),
    Table("webhook_attempts", ("seq", "delivery_id", "at", "outcome", "status_code",
                               "latency_ms", "response_body", "error"), identity="seq"),
    Table("webhook_endpoints", ("subscriber_id", "endpoint_key", "url", "failing_since",
                                "last_success_at", "last_failure_at", "disabled_at",
                                "disabled_reason")),
    Table("inbound_media", ("id", "provider", "instance_id", "kind", "provider_media_id",
                            "source_url", "mime_type", "filename", "status", "attempts",
                            "error", "size", "sha256", "content", "created_at", "fetched_at",
                            "expires_at"), computed=_released("pending"), claims_of="pending"),
    Table("server_keys", ("name", "value")),
    Table("web_sessions", ("key_hash", "role", "subject", "credential", "csrf", "created_at",
                           "expires_at")),
    Table("sent_mail", ("subscriber_id", "kind", "claimed_at", "sent_at")),
    Table("managed_subscribers", ("id", "client_id", "plan", "since", "expires", "instances",
                                  "keyword", "keyword_key", "email", "name", "suspended_at",
                                  "deleted_at", "created_at", "updated_at")),
    Table("subscriber_secrets", ("seq", "subscriber_id", "secret_sha256", "created_at",
                                 "expires_at"), identity="seq"),
    Table("audit_log", ("seq", "at", "actor", "address", "action", "target", "details"),
          identity="seq"),
    Table("stored_endpoints", ("id", "subscriber_id", "url", "password", "format", "events",
                               "enabled", "description", "token", "created_at",
                               "updated_at")),
    Table("stored_endpoint_secrets", ("seq", "endpoint_id", "secret", "created_at",
                                      "expires_at"), identity="seq"),
)
# Tables of each schema that are not data: each store keeps its own schema
# version, PostgreSQL's shared send pace (SQLite keeps it in memory) is only
# the next free slot per number, and the managed state's version only tells
# running processes to reload (each loads it whole at start).
NOT_DATA = frozenset({"schema_version", "pace", "managed_version"})
NOT_COPIED = ("claims (the worker and lease holding a queued message or pending delivery: "
              "cleared, so that work is due at once on PostgreSQL)",
              "the schema version (PostgreSQL keeps its own)")


@dataclass(frozen=True, slots=True)
class Report:
    counts: dict[str, int]  # rows per table (copied, or to copy in a dry run)
    claims: dict[str, int]  # claimed rows per table, whose claims were cleared
    dry_run: bool

    def lines(self, source: str, target: str) -> list[str]:
        verb = "would copy" if self.dry_run else "copied"
        out = [f"{'dry run: ' if self.dry_run else ''}{source} -> {redacted(target)}"]
        out += [f"  {name:<20} {count:>10,}" for name, count in self.counts.items()]
        out.append(f"{verb} {sum(self.counts.values()):,} rows in {len(self.counts)} tables"
                   + (" (nothing written)" if self.dry_run else " in one transaction"))
        released = ", ".join(f"{count} in {name}" for name, count in self.claims.items()
                             if count) or "none held"
        out.append("not copied:")
        out += [f"  - {what}" for what in NOT_COPIED]
        out.append(f"  claims cleared: {released}")
        return out


def _open_source(path: str) -> sqlite3.Connection:
    """The file read-only, at this wagate's schema version."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only=ON")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if version != len(SQLITE_MIGRATIONS):
            raise MigrationRefused(
                f"{path} is at schema version {version}, this wagate's is "
                f"{len(SQLITE_MIGRATIONS)}: start this wagate on it once (it upgrades the "
                "file), stop it, then migrate" if version < len(SQLITE_MIGRATIONS) else
                f"{path} is at schema version {version}, newer than this wagate's "
                f"({len(SQLITE_MIGRATIONS)}): migrate with the wagate that wrote it")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise MigrationRefused(f"cannot read {path} as a wagate SQLite store: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _check_map(side: str, found: dict[str, set[str]]) -> None:
    """Every table and column of `side` is one the map copies (or knows to skip)."""
    expected = {t.name: set(t.target_columns) for t in TABLES}
    problems = [f"table {name} is not in the copy map" for name in sorted(found)
                if name not in expected and name not in NOT_DATA]
    for name, columns in expected.items():
        have = found.get(name)
        if have is None:
            problems.append(f"table {name} is missing")
            continue
        problems += [f"{name}.{col} is not in the copy map" for col in sorted(have - columns)]
        problems += [f"{name}.{col} is missing" for col in sorted(columns - have)]
    if problems:
        raise MigrationRefused(f"the {side} schema does not match this wagate's copy map: "
                               + "; ".join(problems))


def _sqlite_columns(conn: sqlite3.Connection) -> dict[str, set[str]]:
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {name: {r[1] for r in conn.execute(f"PRAGMA table_info({name})")} for name in names}


async def _postgres_columns(conn: asyncpg.Connection) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in await conn.fetch("SELECT table_name, column_name FROM information_schema.columns"
                                " WHERE table_schema = current_schema()"):
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


def _batches(conn: sqlite3.Connection, table: Table, now: float,
             rows: int, size: int) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows, at most `rows` or about `size` bytes at a time."""
    batch: list[tuple[Any, ...]] = []
    held = 0
    for row in conn.execute(table.select(), {"now": now}):
        batch.append(row)
        held += sum(len(v) for v in row if isinstance(v, str | bytes))
        if len(batch) >= rows or held >= size:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _source_counts(conn: sqlite3.Connection) -> tuple[dict[str, int], dict[str, int]]:
    counts = {t.name: conn.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0]
              for t in TABLES}
    claims = {t.name: conn.execute(f"SELECT COUNT(*) FROM {t.name} WHERE status = ?"
                                   " AND claimed_until IS NOT NULL", (t.claims_of,)).fetchone()[0]
              for t in TABLES if t.claims_of}
    return counts, claims


async def _target_rows(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows in each of the target's tables that exist (none yet: an empty schema)."""
    existing = await _postgres_columns(conn)
    return {t.name: await conn.fetchval(f"SELECT COUNT(*) FROM {t.name}")
            for t in TABLES if t.name in existing}


def _refuse_data(target: str, rows: dict[str, int]) -> None:
    held = {name: count for name, count in rows.items() if count}
    if held:
        listed = ", ".join(f"{name} {count}" for name, count in held.items())
        raise MigrationRefused(
            f"{redacted(target)} already holds data ({listed} rows): migrate-store copies "
            "into an empty store only; point --to at a new database or schema "
            "(...?search_path=NAME)")


@contextlib.contextmanager
def _locked_source(path: str) -> Iterator[sqlite3.Connection]:
    """The SQLite file under its one-process lock (no wagate serves it, none
    starts on it meanwhile), read-only, in one read transaction."""
    if not Path(path).is_file():
        raise MigrationRefused(f"no SQLite database at {path}")
    try:
        lock = StoreLock.acquire(path)
    except StoreInUse as exc:
        raise MigrationRefused(str(exc)) from None
    except OSError as exc:  # the lock file sits beside the database
        raise MigrationRefused(f"cannot lock {path} (its lock file {path}.lock is needed to "
                               f"be sure no wagate serves it): {exc}") from exc
    try:
        src = _open_source(path)
        try:
            src.execute("BEGIN")  # one snapshot for the counts and every table
            _check_map("SQLite", _sqlite_columns(src))
            yield src
        finally:
            src.close()
    finally:
        lock.release()


async def migrate_store(source: str, target: str, *, dry_run: bool = False,
                        batch_rows: int = BATCH_ROWS, batch_bytes: int = BATCH_BYTES,
                        progress: Callable[[str], None] | None = None) -> Report:
    """Copy the SQLite store `source` (sqlite:///PATH) into the empty
    PostgreSQL store `target`, or with `dry_run` count what would be copied and
    check that it could be, writing nothing. Raises MigrationRefused. (A
    one-shot command: the SQLite reads block the loop, nothing else runs.)"""
    if not source.startswith(SQLITE_SCHEME):
        raise MigrationRefused(f"--from must be sqlite:///PATH, not {source!r}")
    if not target.startswith(POSTGRES_SCHEMES):
        raise MigrationRefused(f"--to must be postgresql://..., not {redacted(target)!r}")
    with _locked_source(source.removeprefix(SQLITE_SCHEME)) as src:
        counts, claims = _source_counts(src)
        try:
            dst = await asyncpg.connect(target, timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise MigrationRefused(f"cannot connect to {redacted(target)}: {exc}") from exc
        try:
            if dry_run:
                _refuse_data(target, await _target_rows(dst))
            else:
                await _copy(src, dst, target, counts, batch_rows, batch_bytes, progress)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error) as exc:
            raise MigrationRefused(f"nothing was written to {redacted(target)}: "
                                   f"{type(exc).__name__}: {exc}") from exc
        finally:
            await dst.close()
    return Report(counts=counts, claims=claims, dry_run=dry_run)


async def _copy(src: sqlite3.Connection, dst: asyncpg.Connection, target: str,
                counts: dict[str, int], batch_rows: int, batch_bytes: int,
                progress: Callable[[str], None] | None) -> None:
    now = time.time()
    async with dst.transaction():
        try:
            await migrate_schema(dst)
        except RuntimeError as exc:  # a schema newer than this wagate
            raise MigrationRefused(str(exc)) from None
        _check_map("PostgreSQL", await _postgres_columns(dst))
        # Nobody writes these tables until the copy commits; then they must be empty.
        await dst.execute(f"LOCK TABLE {', '.join(t.name for t in TABLES)} IN EXCLUSIVE MODE")
        _refuse_data(target, await _target_rows(dst))
        for table in TABLES:
            copied = 0
            for batch in _batches(src, table, now, batch_rows, batch_bytes):
                # COPY writes identity columns as given (OVERRIDING SYSTEM VALUE).
                await dst.copy_records_to_table(table.name, records=batch,
                                                columns=list(table.target_columns))
                copied += len(batch)
            if copied != counts[table.name]:  # cannot happen in one snapshot; if it does, undo
                raise MigrationRefused(f"{table.name}: read {copied} rows of "
                                       f"{counts[table.name]}; nothing was written")
            if table.identity:
                await dst.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{table.identity}'),"
                    f" COALESCE(MAX({table.identity}), 0) + 1, false) FROM {table.name}")
            if progress is not None:
                progress(f"{table.name}: {copied:,} rows")
