"""Configuration: one TOML file parsed and validated into frozen dataclasses.

Everything is checked here, once, so the rest of the service reads typed
values and a reload either swaps in a whole valid config or keeps the old one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.store import POSTGRES_SCHEMES, SQLITE_SCHEME
from bot.templates import Templates, parse_templates

if TYPE_CHECKING:
    from bot.providers.base import Profile, ProviderConfig

FEATURES = ("text", "image", "document", "url", "group")
WEBHOOK_EVENTS = ("message.received", "user.registered", "user.unregistered", "message.status")
DEFAULT_RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names file, line and key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    pid_file: str | None = None
    shutdown_timeout: float = 10.0
    # A client that stops sending halfway through a body is answered 408 after
    # this long, so no input can hold a request (and its in-flight slot) open.
    body_timeout: float = 30.0


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

    @property
    def shared(self) -> bool:
        return self.owner == "shared"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    url: str
    format: str = "standard"
    secret: str | None = None
    token: str | None = None
    events: frozenset[str] = frozenset(WEBHOOK_EVENTS)
    # A stable id for the endpoint, so deliveries survive reloads that keep the
    # URL; computed once here, it is read for every delivery.
    key: str = field(init=False, default="")

    def __post_init__(self) -> None:
        digest = hashlib.sha256(f"{self.format} {self.url}".encode()).hexdigest()[:16]
        object.__setattr__(self, "key", digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberConfig:
    id: str
    client_id: str
    secret_sha256: bytes
    plan: str
    since: dt.date
    expires: dt.date | None = None
    instances: tuple[int, ...] = ()
    keyword: str | None = None
    webhooks: tuple[WebhookConfig, ...] = ()


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


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of a secret, as `secret_sha256` in the config expects it."""
    return hashlib.sha256(secret.encode()).hexdigest()


# --------------------------------------------------------------------------- parsing


class _Reader:
    """Reads one TOML table with precise errors (file, line, dotted key)."""

    def __init__(self, source: str, text: str, table: Mapping[str, Any], where: str) -> None:
        self.source = source
        self.text = text
        self.table = table
        self.where = where

    def child(self, key: str, table: Mapping[str, Any]) -> _Reader:
        return _Reader(self.source, self.text, table, f"{self.where}.{key}" if self.where else key)

    def error(self, key: str | None, message: str) -> ConfigError:
        dotted = f"{self.where}.{key}" if key and self.where else (key or self.where or "<top>")
        line = _line_of(self.text, f"{self.where}.{key}" if key and self.where
                        else (key or self.where))
        at = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{at}: {dotted}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.error(key, "is required")
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(key, f"must be {_kind_name(kind)}, not a boolean")
        if not isinstance(value, kinds):
            raise self.error(key, f"must be {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def secret(self, key: str, env: Mapping[str, str], *, required: bool = True) -> str | None:
        """`key = "..."` inline, or `key_env = "VAR"` from the environment."""
        if key in self.table:
            value = self.get(key, str)
            if not value:
                raise self.error(key, "must not be empty")
            return value
        env_key = f"{key}_env"
        if env_key in self.table:
            var = self.get(env_key, str)
            if var not in env or not env[var]:
                raise self.error(env_key, f"environment variable {var} is not set")
            return env[var]
        if required:
            raise self.error(key, f"is required (inline `{key}` or `{key}_env`)")
        return None

    def unknown_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(key, f"unknown key (expected one of: {known})")


Reader = _Reader  # what provider packages parse their sections with


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table", dt.date: "a date (YYYY-MM-DD)"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


_SEGMENT = re.compile(r"([^.\[\]]+)(?:\[(\d+)\])?")


def _line_of(text: str, dotted: str) -> int | None:
    """The line of a dotted key such as `subscribers[1].webhooks[0].url`: follow the
    table headers (`[[subscribers]]` the 2nd time, then `[[subscribers.webhooks]]`
    after it), then the key's `name =` line after them. Falls back to the first
    line naming the key, else None."""
    if not dotted:
        return None
    segments = [(m.group(1), m.group(2)) for m in _SEGMENT.finditer(dotted)]
    pos, found, table = 0, None, ""
    for i, (name, index) in enumerate(segments):
        table = f"{table}.{name}" if table else name
        header = re.escape(table).replace(r"\.", r"\s*\.\s*")
        if index is not None:
            matches = list(re.finditer(rf"^[ \t]*\[\[\s*{header}\s*\]\]", text[pos:],
                                       re.MULTILINE))
            if int(index) < len(matches):
                pos += matches[int(index)].start()
                found = pos
            continue
        match = re.search(rf"^[ \t]*\[\s*{header}\s*\]", text[pos:], re.MULTILINE)
        if match:
            pos += match.start()
            found = pos
        elif i == len(segments) - 1:
            # The key, within its own table: up to the next table header.
            start = text.find("\n", pos) + 1 if found is not None else 0
            end = re.search(r"^[ \t]*\[", text[start:], re.MULTILINE)
            body = text[start:start + end.start()] if end else text[start:]
            key = re.search(rf"^[ \t]*\"?{re.escape(name)}\"?\s*=", body, re.MULTILINE)
            if key:
                found = start + key.start()
    if found is None:
        name = segments[-1][0] if segments else dotted
        match = re.search(rf"^[ \t]*(\[\[?\s*)?[\w.\"]*\b{re.escape(name)}\b", text,
                          re.MULTILINE)
        found = match.start() if match else None
    if found is None:
        return None
    # Point at the line's first character, not the white space before it.
    found += len(text[found:]) - len(text[found:].lstrip())
    return text.count("\n", 0, found) + 1


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file. Raises ConfigError with file, line and key."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    return parse_config(text, source=source, env=os.environ if env is None else env)


def parse_config(text: str, *, source: str = "<config>", env: Mapping[str, str] | None = None,
                 base_dir: str | None = None) -> Config:
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    from bot.providers.registry import PROVIDERS  # the providers import this module

    top = _Reader(source, text, data, "")
    top.unknown_keys({"server", "storage", "admin", "defaults", "webhooks", "outbound",
                      "locales", "instances", "plans", "subscribers", "templates"}
                     | {p.config.section for p in PROVIDERS if p.config.section})
    base = Path(base_dir) if base_dir else (Path(source).parent if source != "<config>" else Path())

    server = _parse_server(top.child("server", top.get("server", dict, {})))
    storage_r = top.child("storage", top.get("storage", dict, {}))
    storage = _parse_storage(storage_r, env)
    admin_r = top.child("admin", top.get("admin", dict, {}))
    admin_r.unknown_keys({"token", "token_env"})
    admin_token = admin_r.secret("token", env) or ""
    if len(admin_token) < 8:
        raise admin_r.error("token", "must be at least 8 characters")
    defaults = _parse_defaults(top.child("defaults", top.get("defaults", dict, {})))
    sections = {p.name: p.config.parse_section(
        top.child(p.config.section, top.get(p.config.section, dict)), env)
        for p in PROVIDERS if p.config.section and p.config.section in data}
    webhooks = _parse_webhooks(top.child("webhooks", top.get("webhooks", dict, {})))
    outbound = _parse_outbound(top.child("outbound", top.get("outbound", dict, {})))
    locales_r = top.child("locales", top.get("locales", dict, {}))
    locales_r.unknown_keys({"dir"})
    locales_dir = locales_r.get("dir", str, "")
    if not locales_dir:
        locales_dir = str(_default_locales_dir())
    elif not Path(locales_dir).is_absolute():
        locales_dir = str((base / locales_dir).resolve())

    plans = _parse_plans(top, top.get("plans", dict, {}))
    subscribers = _parse_subscribers(top, top.get("subscribers", list, []), plans, env,
                                     webhooks.allow_private_networks)
    instances = _parse_instances(top, top.get("instances", list, []), subscribers,
                                 {p.name: p.config for p in PROVIDERS}, sections)
    indexes = {inst_id: i for i, inst_id in enumerate(instances)}
    for p in PROVIDERS:
        if p.name in sections:
            sections[p.name] = p.config.finish(
                sections[p.name], instances,
                lambda inst_id, key, message: top.child(
                    f"instances[{indexes[inst_id]}]", {}).error(key, message))

    caps = {p.name: p.caps for p in PROVIDERS}
    window_instances = frozenset(i.id for i in instances.values()
                                 if caps[i.provider].service_window)
    templates = parse_templates(
        top, top.get("templates", list, []), instances=instances, subscribers=subscribers,
        window_instances=[i.id for i in instances.values() if caps[i.provider].templates])

    by_client: dict[str, SubscriberConfig] = {}
    by_keyword: dict[str, SubscriberConfig] = {}
    for sub in subscribers.values():
        by_client[sub.client_id] = sub
        if sub.keyword:
            by_keyword[sub.keyword.casefold()] = sub
    if defaults.locale and not (Path(locales_dir) / defaults.locale).is_dir():
        raise top.child("defaults", {}).error(
            "locale", f"no locale folder {defaults.locale!r} in {locales_dir}")
    return Config(path=None if source == "<config>" else source, server=server, storage=storage,
                  admin_token=admin_token, defaults=defaults, providers=sections,
                  webhooks=webhooks,
                  outbound=outbound, locales_dir=locales_dir, instances=instances, plans=plans,
                  subscribers=subscribers, subscribers_by_client_id=by_client,
                  subscribers_by_keyword=by_keyword, templates=templates,
                  window_instances=window_instances)


def _default_locales_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "locales"


def _positive(r: _Reader, key: str, value: float, *, allow_zero: bool = False) -> float:
    if value < 0 or (value == 0 and not allow_zero):
        raise r.error(key, "must be positive")
    return value


def _parse_server(r: _Reader) -> ServerConfig:
    r.unknown_keys({"host", "port", "pid_file", "shutdown_timeout", "body_timeout"})
    port = r.get("port", int, 8080)
    if not 0 <= port <= 65535:
        raise r.error("port", "must be between 0 and 65535")
    return ServerConfig(host=r.get("host", str, "127.0.0.1"), port=port,
                        pid_file=r.get("pid_file", str, None),
                        shutdown_timeout=_positive(r, "shutdown_timeout",
                                                   r.get("shutdown_timeout", float, 10.0)),
                        body_timeout=_positive(r, "body_timeout",
                                               r.get("body_timeout", float, 30.0)))


def _parse_storage(r: _Reader, env: Mapping[str, str]) -> StorageConfig:
    r.unknown_keys({"url", "url_env", "pool_size"})
    # A PostgreSQL url may hold a password: like any secret, it may come from
    # the environment (`url_env`).
    url = r.secret("url", env, required=False) or "sqlite:///./wagate.db"
    if url.startswith(SQLITE_SCHEME):
        if not url.removeprefix(SQLITE_SCHEME):
            raise r.error("url", "sqlite:/// needs a file path, e.g. sqlite:///./wagate.db")
    elif not url.startswith(POSTGRES_SCHEMES):
        raise r.error("url", "must be sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")
    pool_size = r.get("pool_size", int, 10)
    if not 1 <= pool_size <= 1000:
        raise r.error("pool_size", "must be between 1 and 1000")
    return StorageConfig(url=url, pool_size=pool_size)


def _parse_defaults(r: _Reader) -> DefaultsConfig:
    r.unknown_keys({"locale", "auto_reply_interval", "hint_interval", "reply_window_days"})
    return DefaultsConfig(
        locale=r.get("locale", str, "en"),
        auto_reply_interval=_positive(r, "auto_reply_interval",
                                      r.get("auto_reply_interval", float, 60.0), allow_zero=True),
        hint_interval=_positive(r, "hint_interval", r.get("hint_interval", float, 3600.0),
                                allow_zero=True),
        reply_window_days=_positive(r, "reply_window_days",
                                    r.get("reply_window_days", float, 30.0)),
    )


def _parse_webhooks(r: _Reader) -> WebhooksConfig:
    r.unknown_keys({"timeout", "retry_schedule", "disable_after_days", "allow_private_networks",
                    "max_concurrency_per_endpoint"})
    schedule = r.get("retry_schedule", list, list(DEFAULT_RETRY_SCHEDULE))
    if not schedule or not all(isinstance(x, int | float) and x >= 0 for x in schedule):
        raise r.error("retry_schedule", "must be a non-empty list of seconds (>= 0)")
    nets = []
    for item in r.get("allow_private_networks", list, []):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except (ValueError, TypeError):
            raise r.error("allow_private_networks", f"{item!r} is not a network") from None
    return WebhooksConfig(
        timeout=_positive(r, "timeout", r.get("timeout", float, 15.0)),
        retry_schedule=tuple(float(x) for x in schedule),
        disable_after_days=_positive(r, "disable_after_days",
                                     r.get("disable_after_days", float, 5.0)),
        allow_private_networks=tuple(nets),
        max_concurrency_per_endpoint=int(_positive(r, "max_concurrency_per_endpoint", r.get(
            "max_concurrency_per_endpoint", int, 8))))


def _parse_outbound(r: _Reader) -> OutboundConfig:
    r.unknown_keys({"rate_per_second", "max_attempts", "retry_base", "retry_max"})
    return OutboundConfig(
        rate_per_second=_positive(r, "rate_per_second", r.get("rate_per_second", float, 80.0)),
        max_attempts=int(_positive(r, "max_attempts", r.get("max_attempts", int, 8))),
        retry_base=_positive(r, "retry_base", r.get("retry_base", float, 2.0)),
        retry_max=_positive(r, "retry_max", r.get("retry_max", float, 600.0)))


def _parse_plans(top: _Reader, raw: Mapping[str, Any]) -> dict[str, PlanConfig]:
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEFAULT_PLANS.items()}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise top.error(f"plans.{name}", "must be a table")
        merged.setdefault(name, {}).update(table)
    plans: dict[str, PlanConfig] = {}
    for name, table in merged.items():
        r = top.child(f"plans.{name}", table)
        r.unknown_keys({"messages_per_day", "max_recipients", "expires_after_days", "then",
                        "features", "inbound_webhooks", "max_months", "min_months"})
        features = r.get("features", list, list(FEATURES))
        bad = [f for f in features if f not in FEATURES]
        if bad:
            raise r.error("features", f"unknown feature {bad[0]!r} (known: {', '.join(FEATURES)})")
        plans[name] = PlanConfig(
            name=name,
            messages_per_day=int(_positive(r, "messages_per_day", r.get("messages_per_day", int))),
            max_recipients=int(_positive(r, "max_recipients", r.get("max_recipients", int))),
            expires_after_days=r.get("expires_after_days", int, None),
            then=r.get("then", str, None), features=frozenset(features),
            inbound_webhooks=r.get("inbound_webhooks", bool, False),
            max_months=r.get("max_months", int, 12), min_months=r.get("min_months", int, 0))
    for plan in plans.values():
        if plan.then is not None and plan.then not in plans:
            raise top.child(f"plans.{plan.name}", {}).error("then", f"unknown plan {plan.then!r}")
    return plans


def _parse_subscribers(top: _Reader, raw: list[Any], plans: Mapping[str, PlanConfig],
                       env: Mapping[str, str],
                       allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
                       ) -> dict[str, SubscriberConfig]:
    subs: dict[str, SubscriberConfig] = {}
    client_ids: set[str] = set()
    keywords: set[str] = set()
    for index, table in enumerate(raw):
        r = top.child(f"subscribers[{index}]", table if isinstance(table, dict) else {})
        if not isinstance(table, dict):
            raise r.error(None, "must be a table")
        r.unknown_keys({"id", "client_id", "secret", "secret_env", "secret_sha256", "plan",
                        "since", "expires", "instances", "keyword", "webhooks"})
        sub_id = r.get("id", str)
        if sub_id in subs or sub_id == "shared":
            raise r.error("id", f"duplicate or reserved subscriber id {sub_id!r}")
        client_id = r.get("client_id", str)
        if client_id in client_ids:
            raise r.error("client_id", f"duplicate client_id {client_id!r}")
        client_ids.add(client_id)
        if "secret_sha256" in table:
            hexdigest = r.get("secret_sha256", str)
            if not re.fullmatch(r"[0-9a-fA-F]{64}", hexdigest):
                raise r.error("secret_sha256", "must be 64 hex digits (see `wagate hash-secret`)")
            digest = bytes.fromhex(hexdigest)
        else:
            digest = hashlib.sha256((r.secret("secret", env) or "").encode()).digest()
        plan = r.get("plan", str, "trial")
        if plan not in plans:
            raise r.error("plan", f"unknown plan {plan!r} (known: {', '.join(sorted(plans))})")
        since = r.get("since", dt.date, None) or dt.date(1970, 1, 1)
        expires = r.get("expires", dt.date, None)
        if isinstance(since, dt.datetime):
            since = since.date()
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        if expires is not None and expires < since:
            raise r.error("expires", "is before `since`")
        instances = r.get("instances", list, [])
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in instances):
            raise r.error("instances", "must be a list of instance numbers")
        keyword = r.get("keyword", str, None)
        if keyword is not None:
            if not re.fullmatch(r"\w{2,32}", keyword):
                raise r.error("keyword", "must be one word of 2 to 32 letters or digits")
            if keyword.casefold() in keywords:
                raise r.error("keyword", f"duplicate keyword {keyword!r}")
            keywords.add(keyword.casefold())
        hooks = tuple(_parse_webhook(r.child(f"webhooks[{i}]", h if isinstance(h, dict) else {}),
                                     env, sub_id, allowed)
                      for i, h in enumerate(r.get("webhooks", list, [])))
        subs[sub_id] = SubscriberConfig(id=sub_id, client_id=client_id, secret_sha256=digest,
                                        plan=plan, since=since, expires=expires,
                                        instances=tuple(instances), keyword=keyword,
                                        webhooks=hooks)
    return subs


def _check_http_url(r: _Reader, key: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        hostname = parts.hostname  # raises on a broken IPv6 literal too
    except ValueError:
        raise r.error(key, f"{url!r} is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise r.error(key, f"{url!r} is not an http(s) URL")


# What provider packages validate their sections with.
positive = _positive
check_http_url = _check_http_url


def _parse_webhook(r: _Reader, env: Mapping[str, str], sub_id: str,
                   allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
                   ) -> WebhookConfig:
    from bot.webhooks.safety import check_url

    r.unknown_keys({"url", "format", "secret", "secret_env", "token", "token_env", "events"})
    url = r.get("url", str)
    # Refused here is what no delivery could reach: a wrong scheme, an IP literal
    # outside allow_private_networks, an odd IPv4 spelling. Names are judged at
    # each delivery, once resolved.
    why = check_url(url, allowed)
    if why is not None:
        raise r.error("url", f"{why} (subscriber {sub_id!r})")
    fmt = r.get("format", str, "standard")
    if fmt not in ("standard", "whatsmate"):
        raise r.error("format", "must be \"standard\" or \"whatsmate\"")
    secret = token = None
    if fmt == "standard":
        secret = r.secret("secret", env)
        if not secret or not secret.startswith("whsec_"):
            raise r.error("secret", "a standard webhook needs a `whsec_...` signing secret")
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise r.error("secret", "the part after `whsec_` must be non-empty base64")
    else:
        token = r.secret("token", env, required=False) or ""
    events = r.get("events", list, list(WEBHOOK_EVENTS))
    bad = [e for e in events if e not in WEBHOOK_EVENTS]
    if bad:
        raise r.error("events", f"unknown event {bad[0]!r} (known: {', '.join(WEBHOOK_EVENTS)})")
    return WebhookConfig(url=url, format=fmt, secret=secret, token=token,
                         events=frozenset(events))


def _parse_profile(top: _Reader, r: _Reader) -> Profile | None:
    """`[instances.profile]`, its picture path relative to the config file."""
    from bot.profile import ProfileError, load_profile

    table = r.get("profile", dict, None)
    if table is None:
        return None
    base = Path(top.source).parent if top.source != "<config>" else Path.cwd()
    try:
        return load_profile(table, base)
    except ProfileError as exc:
        raise r.child("profile", table).error(None, str(exc)) from None


def _parse_instances(top: _Reader, raw: list[Any], subscribers: Mapping[str, SubscriberConfig],
                     providers: Mapping[str, ProviderConfig], sections: Mapping[str, Any],
                     ) -> dict[int, InstanceConfig]:
    import phonenumbers

    instances: dict[int, InstanceConfig] = {}
    provider_keys = {k for p in providers.values() for k in p.instance_keys}
    for index, table in enumerate(raw):
        r = top.child(f"instances[{index}]", table if isinstance(table, dict) else {})
        if not isinstance(table, dict):
            raise r.error(None, "must be a table")
        r.unknown_keys({"id", "number", "provider", "owner", "rate_per_second", "profile"}
                       | provider_keys)
        inst_id = r.get("id", int)
        if inst_id <= 0:
            raise r.error("id", "must be a positive integer")
        if inst_id in instances:
            raise r.error("id", f"duplicate instance id {inst_id}")
        number = r.get("number", str)
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            raise r.error("number", f"{number!r} is not a phone number with country code") from None
        number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        provider = r.get("provider", str, "sandbox")
        part = providers.get(provider)
        if part is None:
            raise r.error("provider", "must be one of " + ", ".join(
                f'"{name}"' for name in providers))
        if part.section_required and provider not in sections:
            raise r.error("provider", f'provider "{provider}" needs a [{part.section}] section')
        # Another provider's keys are refused here, so a typo'd provider is not silent.
        foreign = sorted(k for k in table if k in provider_keys - part.instance_keys)
        if foreign:
            raise r.error(foreign[0], f'is not a key of provider "{provider}"')
        options = part.parse_instance(r, sections.get(provider))
        owner = r.get("owner", str, "shared")
        if owner != "shared" and owner not in subscribers:
            raise r.error("owner", f"unknown subscriber {owner!r}")
        rate = r.get("rate_per_second", float, None)
        instances[inst_id] = InstanceConfig(id=inst_id, number=number, provider=provider,
                                            owner=owner, rate_per_second=rate,
                                            options=options, profile=_parse_profile(top, r))
    for sub in subscribers.values():
        for inst in sub.instances:
            if inst not in instances:
                raise top.child("subscribers", {}).error(
                    "instances", f"subscriber {sub.id!r} names unknown instance {inst}")
    return instances
