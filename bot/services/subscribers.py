"""Managing subscribers at runtime: create, change, suspend, resume, delete,
and issue client secrets, shared by the admin API, the subscriber's own API
and the pages. Each change is one store transaction with its audit row, then
reloaded here before the caller answers (bot/services/managed.py), so the
next request, in this process or another, finds it in force."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.config import Config, SubscriberConfig
from bot.services.managed import ManagedState
from bot.store.models import AuditEntry, NewSubscriber
from bot.store.protocol import Conflict, Managed

log = logging.getLogger("wagate.subscribers")

# What a refusal is, for the caller to answer with (bot/web/subscribers.py).
Reason = Literal["invalid", "missing", "unknown_plan", "exists", "keyword_taken", "not_found",
                 "provisioned", "not_self_service", "conflict",
                 # the endpoints' (bot/services/endpoints.py)
                 "invalid_url", "unknown_endpoint", "too_many"]

SECRET_BYTES = 32  # each client secret: 32 random bytes, URL-safe base64
DEFAULT_OVERLAP_HOURS = 24.0
MAX_OVERLAP_HOURS = 24.0 * 90
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_KEYWORD = re.compile(r"\w{2,32}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
RESERVED_IDS = frozenset({"shared"})
FIELDS = frozenset({"id", "plan", "since", "expires", "instances", "keyword", "email", "name"})


class Refused(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def overlap_hours_of(overlap_hours: Any) -> float:
    """A rotation's `overlap_hours` as given (None: the default), checked."""
    if overlap_hours is None:
        return DEFAULT_OVERLAP_HOURS
    if (not isinstance(overlap_hours, int | float) or isinstance(overlap_hours, bool)
            or not 0 <= overlap_hours <= MAX_OVERLAP_HOURS):
        raise Refused("invalid", f"overlap_hours must be a number from 0 to "
                                 f"{MAX_OVERLAP_HOURS:g}")
    return overlap_hours


def self_served(config: Config, subscriber_id: str, instead: str) -> SubscriberConfig:
    """A live subscriber that may serve itself (its secret, its endpoints): a
    managed one, or a provisioned one whose file entry says `self_service =
    true`. `instead`: where a provisioned one's is changed."""
    sub = config.subscribers.get(subscriber_id)
    if sub is None:
        raise Refused("not_found", f"no subscriber {subscriber_id[:80]!r}")
    if sub.managed_by == "config" and not sub.self_service:
        raise Refused("not_self_service", f"subscriber {sub.id!r} is provisioned by the "
                                          f"config file {config.path or '(none)'} without "
                                          f"self_service = true: {instead}")
    return sub


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: "admin", "subscriber:<id>" (the audit log's actor), from where."""

    name: str
    address: str | None = None

    def entry(self, action: str, target: str, **details: Any) -> AuditEntry:
        return AuditEntry(actor=self.name, address=self.address, action=action, target=target,
                          details=details)


@dataclass(frozen=True, slots=True)
class Issued:
    """A secret as issued: shown this once."""

    subscriber: SubscriberConfig
    secret: str
    older_until: float | None  # when the earlier secrets stop (None: there were none)


def new_secret() -> tuple[str, bytes]:
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return secret, hashlib.sha256(secret.encode()).digest()


def _text(raw: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise Refused("invalid", f"{name} must be a non-empty string of at most {limit} "
                                 "characters, or null")
    return value.strip()


def _date(raw: Mapping[str, Any], name: str) -> dt.date | None:
    value = raw.get(name)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Refused("invalid", f"{name} must be a date as YYYY-MM-DD, or null") from None


def _fields(raw: Mapping[str, Any], config: Config, current: SubscriberConfig | None,
            today: dt.date) -> dict[str, Any]:
    """The given fields, checked against the config in force; `current`: the
    subscriber a PATCH changes (None: a new one). Dates come back ISO."""
    if unknown := sorted(set(raw) - FIELDS - ({"id"} if current is None else set())):
        raise Refused("invalid", f"unknown field {unknown[0]!r} (known: "
                                 f"{', '.join(sorted(FIELDS))})")
    if current is not None and "id" in raw:
        raise Refused("invalid", "id cannot be changed")
    out: dict[str, Any] = {}
    if "plan" in raw or current is None:
        plan = raw.get("plan", "trial")
        if not isinstance(plan, str) or plan not in config.plans:
            raise Refused("unknown_plan", f"unknown plan {str(plan)[:40]!r} (known: "
                                          f"{', '.join(sorted(config.plans))})")
        out["plan"] = plan
    since = _date(raw, "since") if "since" in raw else None
    if current is None or "since" in raw:
        out["since"] = (since or (current.since if current else today)).isoformat()
    if "expires" in raw:
        expires = _date(raw, "expires")
        out["expires"] = expires.isoformat() if expires else None
    start = out.get("since") or (current.since.isoformat() if current else None)
    end = out.get("expires", current.expires.isoformat()
                  if current and current.expires else None)
    if start and end and end < start:
        raise Refused("invalid", f"expires ({end}) is before since ({start})")
    if "instances" in raw or current is None:
        instances = raw.get("instances", [])
        if not isinstance(instances, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in instances):
            raise Refused("invalid", "instances must be a list of instance ids")
        if unknown_ids := [i for i in instances if i not in config.instances]:
            raise Refused("invalid", f"instance {unknown_ids[0]} is not configured (configured: "
                                     f"{', '.join(map(str, sorted(config.instances))) or 'none'})")
        out["instances"] = tuple(dict.fromkeys(instances))
    if "keyword" in raw:
        keyword = raw["keyword"]
        if keyword is not None:
            if not isinstance(keyword, str) or not _KEYWORD.fullmatch(keyword):
                raise Refused("invalid", "keyword must be one word of 2 to 32 letters or "
                                         "digits, or null")
            holder = config.subscribers_by_keyword.get(keyword.casefold())
            if holder is not None and (current is None or holder.id != current.id):
                raise Refused("keyword_taken", f"keyword {keyword!r} is subscriber "
                                               f"{holder.id!r}'s")
        out["keyword"] = keyword
    if "email" in raw:
        email = _text(raw, "email", 254)
        if email is not None and not _EMAIL.fullmatch(email):
            raise Refused("invalid", "email is not an email address")
        out["email"] = email
    if "name" in raw:
        out["name"] = _text(raw, "name", 200)
    return out


@dataclass(frozen=True, slots=True)
class Subscribers:
    store: Managed
    state: ManagedState
    now: Callable[[], float]
    today: Callable[[], dt.date]

    def _managed(self, config: Config, subscriber_id: str) -> SubscriberConfig:
        """A live subscriber the API may change: managed, not provisioned."""
        sub = config.subscribers.get(subscriber_id)
        if sub is None:
            raise Refused("not_found", f"no subscriber {subscriber_id[:80]!r}")
        if sub.managed_by == "config":
            raise Refused("provisioned", f"subscriber {sub.id!r} is provisioned by the config "
                                         f"file {config.path or '(none)'}: change it there")
        return sub

    async def _done(self, changed: bool, subscriber_id: str) -> SubscriberConfig | None:
        """After a change: the managed state reloaded, the subscriber as it is now."""
        if not changed:
            raise Refused("not_found", f"no subscriber {subscriber_id[:80]!r}")
        await self.state.refresh()
        return self.state.holder.current.config.subscribers.get(subscriber_id)

    async def create(self, config: Config, raw: Mapping[str, Any], actor: Actor) -> Issued:
        sub_id = raw.get("id")
        if sub_id is None:
            raise Refused("missing", "id is required")
        if not isinstance(sub_id, str) or not _ID.fullmatch(sub_id) or sub_id in RESERVED_IDS:
            raise Refused("invalid", "id must be 1 to 64 letters, digits, '_', '.', '@' or '-' "
                                     "(starting with a letter or digit), and not \"shared\"")
        if sub_id in config.subscribers:
            raise Refused("exists", f"subscriber {sub_id!r} exists")
        fields = _fields(raw, config, None, self.today())
        secret, digest = new_secret()
        new = NewSubscriber(id=sub_id, client_id=f"wg_{secrets.token_hex(12)}",
                            plan=fields["plan"], since=fields["since"],
                            expires=fields.get("expires"), instances=fields["instances"],
                            keyword=fields.get("keyword"), email=fields.get("email"),
                            name=fields.get("name"))
        details = {k: v for k, v in dataclasses.asdict(new).items() if v is not None}
        try:
            created = await self.store.create_subscriber(
                new, digest, actor.entry("subscriber.created", sub_id, **details), self.now())
        except Conflict:
            raise Refused("conflict", "another change took this keyword meanwhile; "
                                      "try again") from None
        if not created:
            raise Refused("exists", f"subscriber id {sub_id!r} was in use (a deleted "
                                    "subscriber's id is not reused)")
        sub = await self._done(True, sub_id)
        assert sub is not None
        log.info("%s created subscriber %s", actor.name, sub_id)
        await self.state.created(sub, secret)
        return Issued(sub, secret, None)

    async def update(self, config: Config, subscriber_id: str, raw: Mapping[str, Any],
                     actor: Actor) -> SubscriberConfig:
        current = self._managed(config, subscriber_id)
        fields = _fields(raw, config, current, self.today())
        changes = {k: v for k, v in fields.items()}
        try:
            changed = await self.store.update_subscriber(
                subscriber_id, changes,
                actor.entry("subscriber.updated", subscriber_id,
                            **{k: list(v) if isinstance(v, tuple) else v
                               for k, v in changes.items()}), self.now())
        except Conflict:
            raise Refused("conflict", "another change took this keyword meanwhile; "
                                      "try again") from None
        sub = await self._done(changed, subscriber_id)
        assert sub is not None
        return sub

    async def suspend(self, config: Config, subscriber_id: str, suspended: bool,
                      actor: Actor) -> SubscriberConfig:
        self._managed(config, subscriber_id)
        action = "subscriber.suspended" if suspended else "subscriber.resumed"
        changed = await self.store.suspend_subscriber(
            subscriber_id, suspended, actor.entry(action, subscriber_id), self.now())
        sub = await self._done(changed, subscriber_id)
        assert sub is not None
        return sub

    async def delete(self, config: Config, subscriber_id: str, actor: Actor) -> None:
        self._managed(config, subscriber_id)
        changed = await self.store.delete_subscriber(
            subscriber_id, actor.entry("subscriber.deleted", subscriber_id), self.now())
        await self._done(changed, subscriber_id)
        log.info("%s deleted subscriber %s", actor.name, subscriber_id)

    async def rotate(self, config: Config, subscriber_id: str, overlap_hours: Any,
                     actor: Actor) -> Issued:
        """A new secret; the earlier ones keep working `overlap_hours` (0: they
        stop now). A provisioned subscriber only when its file entry says
        `self_service = true`."""
        sub = self_served(config, subscriber_id, "its secret is changed there")
        overlap_hours = overlap_hours_of(overlap_hours)
        now = self.now()
        until = now + overlap_hours * 3600
        secret, digest = new_secret()
        changed = await self.store.add_secret(
            subscriber_id, digest, until,
            actor.entry("secret.rotated", subscriber_id, overlap_hours=overlap_hours), now,
            previous=self.state.holder.file.config.subscribers[subscriber_id].secret_sha256
            if sub.managed_by == "config" else None)
        fresh = await self._done(changed, subscriber_id)
        assert fresh is not None
        log.info("%s issued a new secret for subscriber %s (overlap %g h)", actor.name,
                 subscriber_id, overlap_hours)
        return Issued(fresh, secret, until)
