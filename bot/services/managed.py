"""The managed state in every process: loaded from the store at start, merged
into the config snapshot (bot/config/managed.py), reloaded when it changes.

Authentication never reads the database: it reads the snapshot. A change made
here is reloaded at once, before its answer; a change made by another process
arrives by NOTIFY on PostgreSQL (`on_work("managed")`), and a cheap version
check every few seconds catches one whose notification was lost (a dropped
listening connection). On SQLite one process serves the file
(`serve --workers` needs PostgreSQL), so its own reload is all there is.

The managed state is the managed subscribers, the provisioned ones' own
secrets, and the webhook endpoints kept in the store (a subscriber's own:
bot/services/endpoints.py), merged into each subscriber's `webhooks`. To
manage more state at runtime: read its rows in `Managed.load_managed` (one
read, with the version), and build them in `build_managed` below.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable

from bot.config import SubscriberConfig
from bot.config.managed import (
    ManagedEndpoint,
    ManagedSet,
    ProvisionedOverride,
    SigningSecretInfo,
)
from bot.config.snapshot import SnapshotHolder
from bot.config.types import EarlierSecret, SecretHash, WebhookConfig
from bot.store.models import ManagedRows
from bot.store.protocol import Managed

log = logging.getLogger("wagate.managed")

# The safety net under NOTIFY: how often each process compares the version.
CHECK_EVERY = 5.0
# A digest no secret hashes to (the wrong length): a managed subscriber whose
# every secret ended authenticates with none.
NO_SECRET = b""

# Called once a subscriber is created, with its secret (shown this once): the
# welcome email, say. Errors are logged, never undo the creation.
CreatedHook = Callable[[SubscriberConfig, str], Awaitable[None]]


def _secrets(rows: list[tuple[bytes, float | None]]) -> tuple[bytes, tuple[SecretHash, ...]]:
    """The newest secret and the earlier ones still in their overlap."""
    if len(rows) == 1:  # the common case: no rotation under way
        return rows[0][0], ()
    if not rows:
        return NO_SECRET, ()
    return rows[-1][0], tuple(SecretHash(digest, expires)
                              for digest, expires in rows[:-1] if expires is not None)


def _instances(text: str) -> tuple[int, ...]:
    """The JSON list of instance ids the store wrote (`[1, 2]`), read without
    a JSON parser: one per subscriber adds up at start."""
    inner = text[1:-1]
    return tuple(int(part) for part in inner.split(",")) if inner.strip() else ()


def build_managed(rows: ManagedRows) -> ManagedSet:
    """The rows of one load as config objects: one pass, one object per
    subscriber, the dates parsed once per distinct value (bench/managed_load.py
    measures 10,000)."""
    secrets: dict[str, list[tuple[bytes, float | None]]] = {}
    for subscriber_id, digest, expires_at in rows.secrets:
        secrets.setdefault(subscriber_id, []).append((bytes(digest), expires_at))
    dates: dict[str, dt.date] = {}

    def date(text: str) -> dt.date:
        found = dates.get(text)
        if found is None:
            found = dates[text] = dt.date.fromisoformat(text)
        return found

    subs: dict[str, SubscriberConfig] = {}
    no_secret: list[tuple[bytes, float | None]] = []
    for (sub_id, client_id, plan, since, expires, instances, keyword, email, name,
         suspended_at) in rows.subscribers:
        newest, older = _secrets(secrets.pop(sub_id, no_secret))
        subs[sub_id] = SubscriberConfig(
            id=sub_id, client_id=client_id, secret_sha256=newest, older_secrets=older,
            plan=plan, since=date(since), expires=date(expires) if expires else None,
            instances=_instances(instances), keyword=keyword, email=email, name=name,
            suspended=suspended_at is not None, managed_by="store", self_service=True)
    endpoints = build_endpoints(rows)
    for sub_id, sub in subs.items():
        if sub_id in endpoints:
            subs[sub_id] = dataclasses.replace(sub, webhooks=_enabled(endpoints[sub_id]))
    provisioned = {}
    for sub_id, mine in secrets.items():  # the rest: provisioned subscribers' own
        newest, older = _secrets(mine)
        provisioned[sub_id] = ProvisionedOverride(secret_sha256=newest, older_secrets=older)
    for sub_id, theirs in endpoints.items():
        if sub_id not in subs:  # a provisioned subscriber's own endpoints
            provisioned[sub_id] = dataclasses.replace(
                provisioned.get(sub_id, ProvisionedOverride()), webhooks=_enabled(theirs))
    return ManagedSet(version=rows.version, subscribers=subs, provisioned=provisioned,
                      endpoints=endpoints)


def _enabled(endpoints: tuple[ManagedEndpoint, ...]) -> tuple[WebhookConfig, ...]:
    return tuple(e.hook for e in endpoints if e.enabled)


def build_endpoints(rows: ManagedRows) -> dict[str, tuple[ManagedEndpoint, ...]]:
    """The endpoints in the store by subscriber, each with the secrets that
    sign now: the current one, and earlier ones until their overlap ends."""
    signing: dict[str, list[tuple[str, float, float | None]]] = {}
    for endpoint_id, secret, created_at, expires_at in rows.endpoint_secrets:
        signing.setdefault(endpoint_id, []).append((secret, created_at, expires_at))
    out: dict[str, list[ManagedEndpoint]] = {}
    for (endpoint_id, sub_id, url, password, fmt, events, enabled, description, token,
         created_at, updated_at) in rows.endpoints:
        mine = signing.get(endpoint_id, [])
        current = next((secret for secret, _, until in reversed(mine) if until is None), None)
        hook = WebhookConfig(
            id=endpoint_id, url=url, password=password, format=fmt,
            events=frozenset(json.loads(events)), token=token if fmt == "whatsmate" else None,
            secret=current if fmt == "standard" else None,
            earlier_secrets=tuple(EarlierSecret(secret, until) for secret, _, until in mine
                                  if until is not None) if fmt == "standard" else ())
        out.setdefault(sub_id, []).append(ManagedEndpoint(
            hook=hook, subscriber_id=sub_id, enabled=bool(enabled), description=description,
            created_at=created_at, updated_at=updated_at,
            secrets=tuple(SigningSecretInfo(created, until) for _, created, until in mine)
            if fmt == "standard" else ()))
    return {sub_id: tuple(found) for sub_id, found in out.items()}


class ManagedState:
    """Keeps the holder's managed state current."""

    def __init__(self, store: Managed, holder: SnapshotHolder, *,
                 clock: Callable[[], float] = time.time,
                 on_loaded: Callable[[ManagedSet], None] | None = None) -> None:
        self.store = store
        self.holder = holder
        self.clock = clock
        self.on_loaded = on_loaded
        self.on_created: list[CreatedHook] = []
        self._lock = asyncio.Lock()
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    async def refresh(self, *, force: bool = False) -> bool:
        """Load the managed state, and put it in force when its version moved
        (or `force`); whether it did. Loads run one at a time."""
        async with self._lock:
            rows = await self.store.load_managed(self.clock())
            if rows.version == self.holder.managed.version and not force:
                return False
            managed = build_managed(rows)
            self.holder.set_managed(managed)
        log.info("managed state %d in force: %d subscribers", managed.version,
                 len(managed.subscribers))
        if self.on_loaded is not None:
            self.on_loaded(managed)
        return True

    def request(self) -> None:
        """Reload soon, without waiting (a NOTIFY's callback): a burst of
        notifications coalesces into at most one more load."""
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(),
                                                                name="managed-reload")

    async def _drain(self) -> None:
        while self._pending:
            self._pending = False
            try:
                await self.refresh()
            except Exception as exc:  # the store is unreachable: the next check retries
                log.warning("managed state not reloaded: %s", exc)

    async def watch(self, every: float = CHECK_EVERY) -> None:
        """Compare the version every `every` seconds; reload when it moved."""
        while True:
            await asyncio.sleep(every)
            try:
                if await self.store.managed_version() != self.holder.managed.version:
                    self.request()
            except Exception as exc:
                log.warning("managed state version not checked: %s", exc)

    async def created(self, sub: SubscriberConfig, secret: str) -> None:
        """Run the hooks for a new subscriber (each one's failure logged)."""
        for hook in self.on_created:
            try:
                await hook(sub, secret)
            except Exception:
                log.exception("after creating subscriber %s", sub.id)

    async def close(self) -> None:
        self._pending = False
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task], timeout=10)
