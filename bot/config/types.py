"""The configuration's types: frozen dataclasses, their constants and ConfigError.

A leaf: every module that reads the config imports these, and they import
nothing of the project. Parsing lives in bot/config/load.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def postgres_driver_missing() -> str | None:
    """Why a postgresql:// store cannot be opened here, else None: its driver,
    asyncpg, comes with the `postgres` extra (found without importing it)."""
    if importlib.util.find_spec("asyncpg") is None:
        return ("PostgreSQL needs the asyncpg driver, which is not installed: "
                "pip install 'wagate[postgres]'")
    return None
FEATURES = ("text", "image", "document", "url", "group")
WEBHOOK_EVENTS = ("message.received", "user.registered", "user.unregistered", "message.status")
DEFAULT_RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names file, line and key."""


PROFILE_FIELDS = frozenset({"picture", "about", "description", "email", "websites"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """The gateway number's business profile, transport-neutral (None: not set)."""

    picture: bytes | None = None
    picture_mime: str | None = None
    about: str | None = None
    description: str | None = None
    email: str | None = None
    websites: tuple[str, ...] = ()

    def fields(self) -> frozenset[str]:
        """The fields this profile sets."""
        return frozenset(name for name, value in (
            ("picture", self.picture), ("about", self.about),
            ("description", self.description), ("email", self.email),
            ("websites", self.websites)) if value)


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateConfig:
    name: str
    category: str
    languages: Mapping[str, str]  # our locale -> the template's language code; "*" fallback
    instances: tuple[int, ...] = ()  # empty: every window-bound instance
    subscriber: str | None = None
    use: str | None = None  # "notification": sent automatically outside the window
    parameters: int = 0  # body parameters {{1}}..{{n}}
    parameter_names: tuple[str, ...] = ()  # named parameters instead ({{first_name}})
    header: str = "none"

    @property
    def parameter_count(self) -> int:
        return len(self.parameter_names) if self.parameter_names else self.parameters

    def language_for(self, locale: str | None) -> str:
        """The language code for a user's locale: exact, then its language, then "*"."""
        if locale:
            for key in (locale, locale.split("_")[0]):
                if key in self.languages:
                    return self.languages[key]
        return self.languages["*"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Templates:
    """The configured templates, with lookups compiled at load."""

    all: tuple[TemplateConfig, ...] = ()
    # (instance, subscriber or None, header) -> the notification template to use
    notifications: Mapping[tuple[int, str | None, str], TemplateConfig] = field(
        default_factory=dict)
    # (instance, subscriber or None, name) -> the template of that name to use
    by_name: Mapping[tuple[int, str | None, str], TemplateConfig] = field(default_factory=dict)

    def notification(self, instance_id: int, subscriber_id: str | None,
                     header: str) -> TemplateConfig | None:
        return (self.notifications.get((instance_id, subscriber_id, header))
                or self.notifications.get((instance_id, None, header)))

    def named(self, instance_id: int, subscriber_id: str | None,
              name: str) -> TemplateConfig | None:
        return (self.by_name.get((instance_id, subscriber_id, name))
                or self.by_name.get((instance_id, None, name)))


# Long enough that no one guesses it (failures are throttled too: bot/web/throttle.py).
MIN_ADMIN_TOKEN = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    pid_file: str | None = None
    shutdown_timeout: float = 10.0
    # A client that stops sending halfway through a body is answered 408 after
    # this long, so no input can hold a request (and its in-flight slot) open.
    body_timeout: float = 30.0
    # The address the service is reached at (behind a proxy, the proxy's),
    # without a trailing "/": the base of URLs given to others (media links,
    # Twilio's signatures), and https here makes session cookies Secure.
    public_url: str | None = None
    # The only peers whose X-Forwarded-For / X-Forwarded-Proto are believed.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def base_url(self) -> str:
        """`public_url`, else the address it listens on."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageConfig:
    url: str = "sqlite:///./wagate.db"  # or postgresql://user@host:5432/db
    pool_size: int = 10  # PostgreSQL: connections each process opens at most

    @property
    def sqlite_path(self) -> str:
        return self.url.removeprefix("sqlite:///")


@dataclass(frozen=True, slots=True, kw_only=True)
class DefaultsConfig:
    locale: str = "en"
    auto_reply_interval: float = 60.0
    hint_interval: float = 3600.0
    reply_window_days: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhooksConfig:
    timeout: float = 15.0
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    disable_after_days: float = 5.0
    allow_private_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_concurrency_per_endpoint: int = 8


# The largest file of each kind kept ([media] max_bytes): Meta's own limits
# (stickers: an animated one's). A kind not named here takes `document`'s.
DEFAULT_MEDIA_MAX_BYTES: Mapping[str, int] = {
    "image": 5 * 1024 * 1024, "video": 16 * 1024 * 1024, "audio": 16 * 1024 * 1024,
    "voice": 16 * 1024 * 1024, "sticker": 500 * 1024, "document": 100 * 1024 * 1024}


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaConfig:
    """Files users send: fetched from the provider, kept, served by signed links."""

    retention_days: float = 30.0  # a file (and its links) lives this long
    # How long a message.received waits for its file before it goes with media.error.
    delivery_wait: float = 60.0
    fetch_timeout: float = 60.0  # one download, from first byte asked to last
    max_bytes: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MEDIA_MAX_BYTES))

    def limit(self, kind: str) -> int:
        return self.max_bytes.get(kind, self.max_bytes.get("document",
                                                           DEFAULT_MEDIA_MAX_BYTES["document"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundConfig:
    rate_per_second: float = 80.0
    max_attempts: int = 8
    retry_base: float = 2.0
    retry_max: float = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceConfig:
    id: int
    number: str
    provider: str = "sandbox"
    owner: str = "shared"
    rate_per_second: float | None = None
    # The provider's own keys of this instance (meta: phone_number_id), as its
    # config part validated them.
    options: Mapping[str, Any] = field(default_factory=dict)
    # The number's business profile ([instances.profile]), applied through the provider.
    profile: Profile | None = None
    # `owner` names a subscriber that does not exist (yet): a managed one not
    # created so far. Until it is, the number behaves as shared.
    owner_missing: bool = False

    @property
    def shared(self) -> bool:
        return self.owner == "shared" or self.owner_missing


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanConfig:
    name: str
    messages_per_day: int
    max_recipients: int
    expires_after_days: int | None = None
    then: str | None = None
    max_months: int = 12
    min_months: int = 0
    features: frozenset[str] = frozenset(FEATURES)
    inbound_webhooks: bool = False


DEFAULT_PLANS: dict[str, dict[str, Any]] = {
    "trial": {"messages_per_day": 50, "max_recipients": 10, "expires_after_days": 14,
              "then": "forever_green", "inbound_webhooks": False},
    "forever_green": {"messages_per_day": 100, "max_recipients": 50, "inbound_webhooks": False},
    "enterprise": {"messages_per_day": 1000, "max_recipients": 1000, "min_months": 3,
                   "inbound_webhooks": True},
}


@dataclass(frozen=True, slots=True)
class EarlierSecret:
    """A signing secret replaced by a newer one that still signs until `until`
    (a Unix time), so receivers can switch over without losing a delivery."""

    secret: str = field(repr=False)
    until: float


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    url: str
    format: str = "standard"
    secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    events: frozenset[str] = frozenset(WEBHOOK_EVENTS)
    # Earlier signing secrets (standard format), each signing beside `secret`
    # until its time: Standard Webhooks' overlap on rotation.
    earlier_secrets: tuple[EarlierSecret, ...] = ()
    # An endpoint kept in the store (/v3/account/webhooks) has an id of its
    # own, which is its key: its deliveries follow it through a change of URL.
    id: str | None = None
    # A broker's password (or NATS token): taken out of `url`, which logs, the
    # API and the pages show, and never printed.
    password: str | None = field(default=None, repr=False)
    # A stable id for the endpoint, so deliveries survive reloads that keep the
    # URL; computed once here, it is read for every delivery.
    key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        key = self.id or hashlib.sha256(f"{self.format} {self.url}".encode()).hexdigest()[:16]
        object.__setattr__(self, "key", key)

    def signing_secrets(self, now: float) -> tuple[str, ...]:
        """Every secret that signs a delivery made at `now`: the current one
        first, then the earlier ones still within their overlap."""
        current = (self.secret,) if self.secret else ()
        return current + tuple(e.secret for e in self.earlier_secrets if e.until > now)


@dataclass(frozen=True, slots=True)
class SecretHash:
    """An earlier client secret still accepted during a rotation's overlap."""

    sha256: bytes
    expires_at: float  # Unix time: refused from then on


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberConfig:
    id: str
    client_id: str
    secret_sha256: bytes  # the newest secret's digest
    plan: str
    since: dt.date
    expires: dt.date | None = None
    instances: tuple[int, ...] = ()
    keyword: str | None = None
    webhooks: tuple[WebhookConfig, ...] = ()
    # Where the service's mails to this subscriber go ([email]): the welcome
    # message, reminders before it expires, a trial's change of plan.
    email: str | None = None
    # Earlier secrets still in their overlap (a rotation through the API).
    older_secrets: tuple[SecretHash, ...] = ()
    # "config": provisioned by the file (read-only through the API); "store":
    # managed at runtime (/admin/subscribers).
    managed_by: Literal["config", "store"] = "config"
    name: str | None = None
    suspended: bool = False  # sends refused until resumed
    # A provisioned subscriber that may rotate its own secret (then kept in
    # the store, overriding the file's) and manage its own endpoints.
    self_service: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailConfig:
    """`[email]`: the SMTP server the service's mails leave through."""

    host: str
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str  # the From: address (`from` in the file)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: str | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    admin_token: str = ""
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    # Each configured provider's section (e.g. [meta]) by provider name, as its
    # package parsed it.
    providers: Mapping[str, Any] = field(default_factory=dict)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    email: EmailConfig | None = None  # None: no mail is ever sent
    locales_dir: str = "locales"
    instances: Mapping[int, InstanceConfig] = field(default_factory=dict)
    plans: Mapping[str, PlanConfig] = field(default_factory=dict)
    subscribers: Mapping[str, SubscriberConfig] = field(default_factory=dict)
    # Lookup tables compiled at load so the hot path never scans lists.
    subscribers_by_client_id: Mapping[str, SubscriberConfig] = field(default_factory=dict)
    subscribers_by_keyword: Mapping[str, SubscriberConfig] = field(default_factory=dict)
    # `[[templates]]`, and the instances whose provider has a 24-hour
    # customer-service window (bot/window.py).
    templates: Templates = field(default_factory=Templates)
    window_instances: frozenset[int] = frozenset()


_EMAIL_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]+")


def is_email_address(text: str) -> bool:
    """A plain `name@domain.tld`: what a mail's To: or From: may carry (no display
    name, nothing that would add a header or a second recipient)."""
    return len(text) <= 254 and _EMAIL_ADDRESS.fullmatch(text) is not None


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of a secret, as `secret_sha256` in the config expects it."""
    return hashlib.sha256(secret.encode()).hexdigest()

