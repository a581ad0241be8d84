"""The store as ports, one per kind of caller: the pipeline (InboundStore), the
outbound worker (OutboundQueue), the webhook worker (DeliveryQueue), the send
API (Usage), the admin, CLI and web views (Queries), the pages' sessions
(WebSessions) and the subscribers managed at runtime (Managed). A caller asks for the
port it needs; a backend (SqliteStore, PostgresStore) implements `Store`, all
of them. Decisions live in bot/store/rules.py; a backend applies them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from bot.effects import DeliveryDraft, Effects, OutboundDraft
from bot.events import ProviderNotice, StatusUpdate
from bot.store.models import (
    AttemptOutcome,
    AttemptRow,
    AuditEntry,
    AuditRow,
    CostRow,
    DeliveryRow,
    EndpointRow,
    Fit,
    Group,
    InboundContext,
    InstanceActivity,
    ManagedRows,
    MediaInfo,
    MediaJob,
    MediaResult,
    MessageLogRow,
    NewEndpoint,
    NewSubscriber,
    NoticeRow,
    OutboundRow,
    Registration,
    SendLimits,
    SendOutcome,
    SendUsage,
    StatusEvent,
    WebSession,
)


class StoreUnavailable(Exception):
    """The store cannot be opened (its database unreachable, or refusing us);
    the message says which, never with a password."""


class Unchanged(Exception):
    """A unit's guarded statement changed no row (what it was to change is
    gone): the unit was undone."""


class Conflict(Exception):
    """A unit would have broken a unique constraint (another process's change
    came first): the unit was undone."""


class StoreBase(Protocol):
    """What every port shares: its lifecycle, and who this process is."""

    # Claims carry their holder (a worker id) and a lease. True when one process
    # alone serves the store (SQLite): every claim found at start is then a
    # dead process's. Otherwise a starting worker releases only the claims its
    # own id holds, and the others' come back when their lease ends.
    single_process: bool
    # The holder this process's claims carry: unique among live processes, so
    # no process ever releases a live sibling's claims.
    worker_id: str

    async def close(self) -> None: ...

    async def settled(self) -> None:
        """Wait until every unit of work queued so far has run."""
        ...

    async def ping(self) -> None: ...

    async def on_work(self, queue: Literal["outbound", "deliveries", "media", "managed"],
                      wake: Callable[[], None]) -> None:
        """Call `wake` once a unit of work that queued work on `queue`, or
        ("managed") changed the managed state, has committed: this process's
        units call it themselves; another process's (PostgreSQL) by NOTIFY.
        The one way a worker is woken; a wake-up may be lost (workers still
        poll), none is needed for correctness (bot/store/wakeups.py)."""
        ...


class InboundStore(StoreBase, Protocol):
    """Inbound messages and chat state: the pipeline's port."""

    # inbound
    async def load_inbound_context(self, instance_id: int, sender: str,
                                   group_id: str | None,
                                   user_id: str | None = None) -> InboundContext:
        """The sender's state; their registration found by number or by user id."""
        ...

    async def commit_inbound(self, effects: Effects, now: float) -> bool:
        """Store the message and its effects; False (and nothing written) for a duplicate."""
        ...

    async def release_chat(self, instance_id: int, chat: str) -> None:
        """The chat whose state `load_inbound_context` read will see no commit
        (its message's handling failed): let it go now, not after a timeout."""
        ...

    async def record_notice(self, notice: ProviderNotice, now: float) -> None:
        """Keep a provider's notice (its detail as JSON)."""
        ...

    async def our_message_ids(self, instance_id: int, provider_message_ids: Sequence[str]
                              ) -> dict[str, str]:
        """Those of these provider ids that name a message sent here from the
        instance, each with the id the send API returned for it."""
        ...

    async def apply_status(self, update: StatusUpdate, now: float,
                           route: Callable[[OutboundRow], list[DeliveryDraft]] | None = None
                           ) -> OutboundRow | None:
        """Apply a status; `route` names the webhook deliveries it causes, committed with it."""
        ...

    async def opt_out(self, number: str, instance_ids: Sequence[int], default_locale: str,
                      now: float,
                      route: Callable[[InboundContext], list[DeliveryDraft]] | None = None
                      ) -> list[tuple[Registration, str | None]]:
        """Opt a number out by hand on each instance; each registration after, with
        its status before (None when there was none). `route` names the webhook
        deliveries for each active registration it ends, given the user's context
        there before; they commit with the opt-out."""
        ...


class OutboundQueue(StoreBase, Protocol):
    """The outbound queue: the outbound worker's port."""

    # outbound queue
    async def enqueue(self, drafts: list[OutboundDraft], now: float) -> None: ...

    async def claim_outbound(self, now: float, limit: int, lease: float,
                             exclude_instances: Sequence[int] = (),
                             holder: str | None = None) -> list[OutboundRow]: ...

    async def outbound_media(self, message_id: str) -> bytes | None: ...

    async def mark_sent(self, message_id: str, provider_message_id: str, now: float, *,
                        keep_media: bool = False,
                        deliveries: Sequence[DeliveryDraft] = ()) -> None:
        """Record the provider's acceptance, ahead of queued work: until it is
        recorded, a crash sends the message again. The media are dropped unless
        `keep_media` (a provider that fetches them by URL later, e.g. Twilio);
        kept ones go with the message's first provider status. `deliveries` (its
        `message.status` sent) are queued with it, if it was still queued."""
        ...

    async def mark_retry(self, message_id: str, next_attempt_at: float, code: int | None,
                         title: str | None, now: float) -> None: ...

    async def mark_failed(self, message_id: str, code: int | None, title: str | None,
                          now: float, *, deliveries: Sequence[DeliveryDraft] = ()) -> None:
        """The message failed for good; `deliveries` (its `message.status` failed)
        are queued in the same transaction."""
        ...

    async def release_claims(self, holder: str | None = None) -> int:
        """Make `holder`'s claims due at once; how many. None: every claim on a
        single-process store, this store's own worker id's on a shared one."""
        ...

    async def next_outbound_due(self, exclude_instances: Sequence[int] = ()) -> float | None:
        """When the next queued message (not leased) of a number not in
        `exclude_instances` comes due."""
        ...

    async def reserve_pace(self, instance_id: int, interval: float, count: int = 1) -> float:
        """Book a gateway number's next `count` send slots, each `interval` seconds
        after the one before, shared by every process of the store; the seconds
        to wait for the first (the k-th comes k × `interval` later). (A
        single-process store's worker paces in memory instead.)"""
        ...

    async def queue_depth(self) -> tuple[int, float | None]: ...

    async def resend_as_template(self, build: Callable[[OutboundRow, str | None, bool],
                                                       str | None], now: float, *,
                                 message_id: str | None = None,
                                 provider_message_id: str | None = None,
                                 requeue: bool = True) -> OutboundRow | None:
        """Set a message refused as outside the window to go again as the template
        `build` names (row, user's locale, media still here); None when none."""
        ...


class DeliveryQueue(StoreBase, Protocol):
    """The webhook delivery queue: the webhook worker's port."""

    async def add_deliveries(self, drafts: Sequence[DeliveryDraft], now: float) -> None: ...

    async def claim_deliveries(self, now: float, limit: int, lease: float,
                               exclude: Sequence[tuple[str, str]] = (),
                               holder: str | None = None,
                               due_by: float | None = None) -> list[DeliveryRow]:
        """Lease deliveries due by `due_by` (default `now`), skipping busy
        (subscriber, endpoint) pairs."""
        ...

    async def record_attempts(self, results: Sequence[AttemptOutcome],
                              now: float) -> list[tuple[str, str | None]]:
        """Log attempts in order, update each delivery and its endpoint's health;
        returns, for each, the final outcome and the reason when the endpoint
        was disabled by it."""
        ...

    async def release_delivery_claims(self, holder: str | None = None) -> int:
        """Make `holder`'s delivery claims due at once; how many. None: as for
        `release_claims`."""
        ...

    async def next_delivery_due(self, exclude: Sequence[tuple[str, str]] = ()
                                ) -> float | None: ...

    async def delivery_queue_depth(self) -> int: ...


class Usage(StoreBase, Protocol):
    """Subscriber usage: quota periods and recipients, checked and spent at once."""

    async def accept_send(self, draft: OutboundDraft, *, group_name: str | None,
                          limits: SendLimits, now: float,
                          fit: Fit | None = None) -> SendOutcome:
        """Check registration (or group; a person by number or user id), recipient
        limit and quota, then count and queue the draft, all in one transaction;
        nothing is written unless queued. `fit` turns the draft, given the
        registration, into what is queued, or refuses it (bot/window.py)."""
        ...

    async def send_usage(self, subscriber_id: str, period_seconds: float,
                         now: float) -> SendUsage: ...


class Queries(StoreBase, Protocol):
    """What the admin API, the CLI, the dashboard and the portal read, and the
    few operations they run on deliveries."""

    async def get_outbound(self, message_id: str) -> OutboundRow | None: ...

    async def status_history(self, message_id: str) -> list[StatusEvent]:
        """The message's recorded status changes and retried attempts, oldest
        first; empty for an unknown id."""
        ...

    async def list_outbox(self, *, instance_id: int | None, to: str | None,
                          limit: int) -> list[OutboundRow]: ...

    # views
    async def list_registrations(self, *, instance_id: int | None, status: str | None,
                                 limit: int) -> list[Registration]: ...

    async def registrations_of(self, number: str) -> list[Registration]: ...

    async def has_written(self, number: str) -> bool: ...

    async def find_group(self, instance_id: int, name: str) -> Group | None: ...

    async def list_messages(self, *, direction: str | None, instance_id: int | None,
                            number: str | None, limit: int) -> list[MessageLogRow]: ...

    async def list_deliveries(self, *, status: str | None, subscriber_id: str | None,
                              endpoint_key: str | None, limit: int) -> list[DeliveryRow]: ...

    async def get_delivery(self, delivery_id: str
                           ) -> tuple[DeliveryRow, list[AttemptRow]] | None: ...

    async def retry_delivery(self, delivery_id: str, now: float
                             ) -> tuple[str, DeliveryRow | None]:
        """("retried" | "pulled" | "in_flight" | "not_found", the row after)."""
        ...

    async def replay_deliveries(self, since: float, now: float, *,
                                subscriber_id: str | None = None,
                                endpoint_key: str | None = None) -> tuple[int, int]:
        """(Failed ones queued again, pending ones pulled forward.)"""
        ...

    async def list_endpoint_health(self) -> list[EndpointRow]: ...

    async def list_notices(self, *, provider: str | None = None, kind: str | None = None,
                           limit: int = 100) -> list[NoticeRow]:
        """Provider notices, newest first."""
        ...

    async def costs(self) -> list[CostRow]:
        """Messages counted by subscriber and the provider's pricing category."""
        ...

    async def enable_endpoint(self, endpoint_key: str,
                              subscriber_id: str | None = None) -> int: ...

    async def search_registrations(self, *, number: str | None, locale: str | None,
                                   status: str | None, instance_id: int | None,
                                   limit: int) -> list[Registration]:
        """Newest first; `number` matches any part of the E.164 number."""
        ...

    async def search_outbound(self, *, subscriber_id: str | None, status: str | None,
                              error_code: int | None, instance_id: int | None,
                              limit: int) -> list[OutboundRow]:
        """Sent messages newest first; status "queued" includes those being sent."""
        ...

    async def activity(self, *, since: float, now: float,
                       buckets: int) -> list[InstanceActivity]:
        """Inbound and outbound counts in `buckets` equal slices of [since, now), and
        the outbound queue, for every instance with either."""
        ...


class MediaStore(StoreBase, Protocol):
    """Files users sent: the media worker's queue, the /media route's reads.
    The fetch is queued by `commit_inbound`, with the message (Effects.media)."""

    async def claim_media(self, now: float, limit: int, lease: float,
                          holder: str | None = None) -> list[MediaJob]:
        """Up to `limit` files due to fetch, leased to `holder` until `now + lease`."""
        ...

    async def finish_media(self, media_id: str, result: MediaResult, now: float) -> int:
        """Record a fetch; when final, the deliveries waiting for the file are due
        now (those not yet tried). Returns how many were."""
        ...

    async def media_info(self, media_id: str) -> MediaInfo | None: ...

    async def media_content(self, media_id: str) -> tuple[MediaInfo, bytes] | None:
        """A fetched file and its bytes; None when there is none (any more)."""
        ...

    async def purge_media(self, now: float) -> int:
        """Delete the files past their expiry; how many went."""
        ...

    async def release_media_claims(self, holder: str | None = None) -> int: ...

    async def next_media_due(self) -> float | None: ...

    async def server_key(self, name: str) -> bytes:
        """A secret of the service's own, the same in every process on the store:
        made (32 random bytes) the first time it is asked for."""
        ...


class WebSessions(StoreBase, Protocol):
    """The dashboard's and the portal's sessions: recorded, so that ending one
    ends it in every process sharing the store."""

    async def open_session(self, session: WebSession, now: float) -> None:
        """Record a new session (and forget those that have ended by `now`)."""
        ...

    async def find_session(self, key_hash: str, now: float) -> WebSession | None:
        """The session with this key, unless it has ended or was ended."""
        ...

    async def end_session(self, key_hash: str) -> None: ...

    async def end_sessions(self, role: str, subject: str) -> int:
        """End every session of one subject ("log out everywhere"); how many."""
        ...


class MailLog(StoreBase, Protocol):
    """The service's mails to subscribers that must go once (a welcome, each
    reminder, a change of plan), whichever process sends them."""

    async def claim_mail(self, subscriber_id: str, kind: str, now: float, lease: float) -> bool:
        """True when this caller is to send the mail `kind` now: it was never
        sent, and no other sender holds it (a claim older than `lease` is
        taken over: its sender died)."""
        ...

    async def finish_mail(self, subscriber_id: str, kind: str, now: float, *,
                          sent: bool) -> None:
        """Record a claimed mail as sent, or (not sent) release it for a later try."""
        ...

    async def sent_mail(self, subscriber_id: str) -> list[tuple[str, float]]:
        """The mails sent to a subscriber: (kind, when), oldest first."""
        ...


class Managed(StoreBase, Protocol):
    """Subscribers managed at runtime, their client secrets and the audit log
    (bot/store/managed.py). Each change is one transaction with its audit row;
    on PostgreSQL it NOTIFYs every process (`on_work("managed", ...)`)."""

    async def load_managed(self, now: float) -> ManagedRows:
        """The managed state in force: version, live subscribers, live secrets."""
        ...

    async def managed_version(self) -> int: ...

    async def create_subscriber(self, sub: NewSubscriber, secret_sha256: bytes,
                                audit: AuditEntry, now: float) -> bool:
        """False when the id is or was in use; raises `Conflict` when another
        change took its keyword or client id meanwhile."""
        ...

    async def update_subscriber(self, subscriber_id: str, changes: Mapping[str, Any],
                                audit: AuditEntry, now: float) -> bool: ...

    async def suspend_subscriber(self, subscriber_id: str, suspended: bool,
                                 audit: AuditEntry, now: float) -> bool: ...

    async def delete_subscriber(self, subscriber_id: str, audit: AuditEntry,
                                now: float) -> bool: ...

    async def add_secret(self, subscriber_id: str, secret_sha256: bytes, overlap_until: float,
                         audit: AuditEntry, now: float, *,
                         previous: bytes | None = None) -> bool: ...

    async def record_audit(self, audit: AuditEntry, now: float) -> None: ...

    async def list_audit(self, *, since: float | None = None, actor: str | None = None,
                         target: str | None = None, before: int | None = None,
                         limit: int = 100) -> list[AuditRow]: ...


class ManagedEndpoints(Managed, Protocol):
    """Webhook endpoints kept in the store (bot/store/endpoints.py), loaded with
    the managed state; each change like the subscribers' (its audit row, the
    version's bump). `managed`: the subscriber is a managed one, whose
    endpoints change only while it lives (a provisioned one has no row)."""

    async def create_endpoint(self, endpoint: NewEndpoint, secret: str, audit: AuditEntry,
                              now: float, *, managed: bool) -> bool: ...

    async def update_endpoint(self, subscriber_id: str, endpoint_id: str,
                              changes: Mapping[str, Any], audit: AuditEntry, now: float, *,
                              managed: bool) -> bool:
        """False when there is no such endpoint of this subscriber."""
        ...

    async def delete_endpoint(self, subscriber_id: str, endpoint_id: str, audit: AuditEntry,
                              now: float) -> bool: ...

    async def rotate_endpoint_secret(self, subscriber_id: str, endpoint_id: str, secret: str,
                                     until: float, audit: AuditEntry, now: float, *,
                                     managed: bool) -> bool:
        """A new signing secret; the earlier ones sign until `until` at the latest."""
        ...


class Store(InboundStore, OutboundQueue, DeliveryQueue, Usage, Queries, MediaStore, WebSessions,
            MailLog, ManagedEndpoints, Protocol):
    """Every port: what a backend implements (SqliteStore, PostgresStore)."""
