"""Rows the store hands out: frozen, typed, no database handles inside."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.effects import OutboundDraft


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    instance_id: int
    number: str
    locale: str
    status: str  # active | opted_out
    keyword_subscriber: str | None
    registered_at: float
    updated_at: float
    opted_out_at: float | None = None  # since when opted out; None while active
    user_id: str | None = None  # the provider's business-scoped user id, when known
    last_inbound_at: float | None = None  # the user's last own message (opens the window)

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    instance_id: int
    group_id: str
    name: str
    registered_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundContext:
    """What handlers need to know about the sender before deciding."""

    registration: Registration | None
    group: Group | None
    last_auto_reply_at: float | None
    last_hint_at: float | None
    # Webhook routing: the subscriber that most recently sent to this chat on this
    # instance, and when; when the registration's keyword was last named.
    last_sender: tuple[str, float] | None = None
    keyword_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundRow:
    id: str
    instance_id: int
    to: str | None
    group_id: str | None
    type: str
    text: str | None
    caption: str | None
    filename: str | None
    mime: str | None
    subscriber_id: str | None
    status: str
    attempts: int
    provider_message_id: str | None
    error_code: int | None
    error_title: str | None
    created_at: float
    updated_at: float
    group_name: str | None = None
    template: str | None = None  # JSON: the template it goes out as (bot/templates.py)
    pricing_category: str | None = None  # what the provider charged it as, once told
    billable: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeRow:
    """A provider notice as stored: `detail` is the provider's JSON, as sent."""

    seq: int
    provider: str
    kind: str
    instance_id: int | None
    event: str | None
    detail: str
    at: float  # when the provider says it happened (else when it arrived)
    received_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusEvent:
    """One row of an outbound message's status history. `status`: queued | sent |
    delivered | read | failed, or retry (an attempt that failed and will be
    retried; its error says why)."""

    at: float
    status: str
    error_code: int | None = None
    error_title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageLogRow:
    direction: str  # in | out
    id: str
    instance_id: int
    number: str | None
    group_id: str | None
    type: str
    text: str | None
    status: str | None
    at: float


# ---- send API


@dataclass(frozen=True, slots=True, kw_only=True)
class SendLimits:
    """The plan figures one send is checked against."""

    messages_per_period: int
    max_recipients: int
    period_seconds: float = 24 * 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SendOutcome:
    """What the store decided about one send.

    `status`: queued | not_registered | unknown_group | recipient_limit | quota_exceeded
    | outside_window (no template to send it as; `window_closed_at` says since when).
    """

    status: str
    message_id: str | None = None
    period_start: float | None = None
    reset_at: float | None = None  # when the running quota period ends
    count: int = 0  # messages counted in the running period (after this one, if queued)
    limit: int = 0  # the limit that refused it (quota or recipients)
    window_closed_at: float | None = None
    # outside_window with a template configured that the provider will not send
    # (paused, disabled, rejected): why, for the refusal to say.
    template_problem: str | None = None

    @property
    def queued(self) -> bool:
        return self.status == "queued"


# What a send becomes once its recipient's registration is read, inside the
# store's transaction: the draft to queue, or a refusal (bot/window.py).
Fit = Callable[[OutboundDraft, Registration], OutboundDraft | SendOutcome]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendUsage:
    """A subscriber's quota period and recipient count, as of `now`."""

    period_start: float | None  # None: no period is running
    reset_at: float | None
    count: int
    recipients: int


# ---- webhooks


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRow:
    id: str  # the stable webhook-id
    subscriber_id: str
    endpoint_key: str
    url: str
    format: str
    event_type: str
    payload: str
    status: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: float
    last_status_code: int | None
    last_error: str | None
    created_at: float
    updated_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRow:
    delivery_id: str
    at: float
    outcome: str  # delivered | retry | failed | disabled | refused
    status_code: int | None
    latency_ms: float | None
    response_body: str | None
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptOutcome:
    """What one delivery attempt did, and what follows from it (one unit of work).

    `outcome`: delivered | retry | failed | disabled (the endpoint answered 410)
    | refused (the address is not allowed). `disable_after` is how long an
    endpoint may keep failing before it is disabled."""

    attempt: AttemptRow
    subscriber_id: str
    endpoint_key: str
    url: str
    next_attempt_at: float | None = None  # for retry
    disable_after: float
    endpoint_failure: bool = True  # counts toward disabling the endpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointRow:
    subscriber_id: str
    endpoint_key: str
    url: str
    failing_since: float | None
    last_success_at: float | None
    last_failure_at: float | None
    disabled_at: float | None
    disabled_reason: str | None
    pending: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CostRow:
    """How many messages of a subscriber the provider charged as one category."""

    subscriber_id: str | None  # None: the gateway's own replies
    category: str
    billable: bool | None
    messages: int


# ---- dashboards


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceActivity:
    """One gateway number's last stretch of traffic, for the dashboard: messages
    per bucket (oldest first), and its outbound queue now."""

    instance_id: int
    inbound: tuple[int, ...]
    outbound: tuple[int, ...]
    queued: int
    oldest_queued_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaJob:
    """A user's file to fetch from the provider, as the media worker claims it."""

    id: str
    provider: str
    instance_id: int
    kind: str
    provider_media_id: str
    source_url: str | None
    mime_type: str | None
    filename: str | None
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaResult:
    """One fetch's end: the file, or why not (`retry_at`: tried again then)."""

    content: bytes | None = None
    sha256: str | None = None
    mime_type: str | None = None
    error: str | None = None
    retry_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaInfo:
    """A kept file's description (its bytes apart: `media_content`)."""

    id: str
    status: str  # pending | ready | failed
    kind: str
    mime_type: str | None
    filename: str | None
    size: int | None
    sha256: str | None
    error: str | None
    expires_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSession:
    """A dashboard or portal session, as recorded (the cookie's key hashed)."""

    key_hash: str
    role: str  # admin | subscriber
    subject: str  # "admin", or the subscriber id
    credential: str  # fingerprint of the credential it was opened with
    csrf: str
    created_at: float
    expires_at: float


# ---- managed subscribers (bot/store/managed.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewSubscriber:
    """A managed subscriber as created: dates ISO, the keyword as given."""

    id: str
    client_id: str
    plan: str
    since: str
    expires: str | None
    instances: tuple[int, ...]
    keyword: str | None
    email: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class ManagedRows:
    """The managed state as one load reads it: the version first, then rows as
    the database gives them (no object per row: the caller builds its own).
    `subscribers`: MANAGED_COLUMNS; `secrets`: (subscriber_id, sha256 digest,
    expires_at), oldest first, those not yet expired."""

    version: int
    subscribers: list[Any]
    secrets: list[Any]
    # ENDPOINT_COLUMNS (bot/store/endpoints.py), and the signing secrets still
    # signing: (endpoint_id, secret, created_at, expires_at), oldest first.
    endpoints: list[Any] = field(default_factory=list)
    endpoint_secrets: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEndpoint:
    """A webhook endpoint as created in the store: `url` without a broker's
    password, which is `password`."""

    id: str
    subscriber_id: str
    url: str
    password: str | None
    format: str
    events: tuple[str, ...]
    enabled: bool
    description: str | None
    token: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """A change as the audit log records it. `actor`: "admin", "config" or
    "subscriber:<id>"; `details` never holds a secret."""

    actor: str
    action: str
    target: str | None = None
    address: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRow:
    seq: int
    at: float
    actor: str
    address: str | None
    action: str
    target: str | None
    details: Mapping[str, Any]
