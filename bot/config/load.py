"""Loading the configuration: one TOML file parsed and validated into frozen dataclasses.

Everything is checked here, once, so the rest of the service reads typed
values and a reload either swaps in a whole valid config or keeps the old one.
This module sits on top: it asks the provider registry for their sections, so
only the runtime, the CLI, the bench and tests import it; everything else
reads the types (bot/config/types.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import phonenumbers

from bot import shipped_files
from bot.config.reader import Reader, base_url, positive
from bot.config.types import (
    DEFAULT_MEDIA_MAX_BYTES,
    DEFAULT_PLANS,
    DEFAULT_RETRY_SCHEDULE,
    FEATURES,
    MIN_ADMIN_TOKEN,
    POSTGRES_SCHEMES,
    SQLITE_SCHEME,
    WEBHOOK_EVENTS,
    Config,
    ConfigError,
    DefaultsConfig,
    EarlierSecret,
    EmailConfig,
    InstanceConfig,
    MediaConfig,
    OutboundConfig,
    PlanConfig,
    Profile,
    ServerConfig,
    StorageConfig,
    SubscriberConfig,
    WebhookConfig,
    WebhooksConfig,
    is_email_address,
    postgres_driver_missing,
)
from bot.forwarding.destinations import check_destination, without_password
from bot.forwarding.payloads import signing_secret_error
from bot.profile import ProfileError, load_profile
from bot.providers.base import ProviderConfig
from bot.providers.registry import PROVIDERS
from bot.templates import parse_templates


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

    top = Reader(source, text, data, "")
    top.unknown_keys({"server", "storage", "admin", "defaults", "webhooks", "outbound",
                      "media", "email", "locales", "instances", "plans", "subscribers", "templates"}
                     | {p.config.section for p in PROVIDERS if p.config.section})
    base = Path(base_dir) if base_dir else (Path(source).parent if source != "<config>" else Path())

    server = _parse_server(top.child("server", top.get("server", dict, {})))
    storage_r = top.child("storage", top.get("storage", dict, {}))
    storage = _parse_storage(storage_r, env)
    admin_r = top.child("admin", top.get("admin", dict, {}))
    admin_r.unknown_keys({"token", "token_env"})
    admin_token = admin_r.secret("token", env) or ""
    if len(admin_token) < MIN_ADMIN_TOKEN:
        raise admin_r.error("token", f"must be at least {MIN_ADMIN_TOKEN} characters (a random "
                                     "one: openssl rand -base64 24)")
    defaults = _parse_defaults(top.child("defaults", top.get("defaults", dict, {})))
    sections = {p.name: p.config.parse_section(
        top.child(p.config.section, top.get(p.config.section, dict)), env)
        for p in PROVIDERS if p.config.section and p.config.section in data}
    webhooks = _parse_webhooks(top.child("webhooks", top.get("webhooks", dict, {})))
    outbound = _parse_outbound(top.child("outbound", top.get("outbound", dict, {})))
    media = _parse_media(top.child("media", top.get("media", dict, {})))
    email = _parse_email(top.child("email", top.get("email", dict, {})), env)
    locales_r = top.child("locales", top.get("locales", dict, {}))
    locales_r.unknown_keys({"dir"})
    locales_dir = locales_r.get("dir", str, "")
    if not locales_dir:
        locales_dir = str(shipped_files.locales_dir())
    elif not Path(locales_dir).is_absolute():
        locales_dir = str((base / locales_dir).resolve())

    plans = _parse_plans(top, top.get("plans", dict, {}))
    subscribers = _parse_subscribers(top, top.get("subscribers", list, []), plans, env,
                                     webhooks.allow_private_networks)
    instances = _parse_instances(top, top.get("instances", list, []), subscribers,
                                 {p.name: p.config for p in PROVIDERS}, sections)
    indexes = {inst_id: i for i, inst_id in enumerate(instances)}
    for name, section in sections.items():
        # A provider section's own public_url (Twilio's) defaults to [server]'s.
        if getattr(section, "public_url", None) == "":
            if server.public_url is None:
                raise top.child(name, {}).error("public_url", "is required (here or as "
                                                "[server] public_url)")
            sections[name] = replace(section, public_url=server.public_url)
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
                  webhooks=webhooks, media=media, email=email,
                  outbound=outbound, locales_dir=locales_dir, instances=instances, plans=plans,
                  subscribers=subscribers, subscribers_by_client_id=by_client,
                  subscribers_by_keyword=by_keyword, templates=templates,
                  window_instances=window_instances)


def _parse_server(r: Reader) -> ServerConfig:
    r.unknown_keys({"host", "port", "pid_file", "shutdown_timeout", "body_timeout",
                    "public_url", "trusted_proxies"})
    port = r.get("port", int, 8080)
    if not 0 <= port <= 65535:
        raise r.error("port", "must be between 0 and 65535")
    public_url = r.get("public_url", str, None)
    if public_url is not None:
        public_url = base_url(r, "public_url", public_url)
    proxies = []
    for item in r.get("trusted_proxies", list, []):
        try:
            proxies.append(ipaddress.ip_network(item, strict=False))
        except (ValueError, TypeError):
            raise r.error("trusted_proxies", f"{item!r} is not an address or network "
                                             "(CIDR, e.g. 10.0.0.0/8)") from None
    return ServerConfig(host=r.get("host", str, "127.0.0.1"), port=port,
                        pid_file=r.get("pid_file", str, None),
                        shutdown_timeout=positive(r, "shutdown_timeout",
                                                   r.get("shutdown_timeout", float, 10.0)),
                        body_timeout=positive(r, "body_timeout",
                                               r.get("body_timeout", float, 30.0)),
                        public_url=public_url, trusted_proxies=tuple(proxies))


def _parse_storage(r: Reader, env: Mapping[str, str]) -> StorageConfig:
    r.unknown_keys({"url", "url_env", "pool_size"})
    # A PostgreSQL url may hold a password: like any secret, it may come from
    # the environment (`url_env`).
    url = r.secret("url", env, required=False) or "sqlite:///./wagate.db"
    if url.startswith(SQLITE_SCHEME):
        if not url.removeprefix(SQLITE_SCHEME):
            raise r.error("url", "sqlite:/// needs a file path, e.g. sqlite:///./wagate.db")
    elif not url.startswith(POSTGRES_SCHEMES):
        raise r.error("url", "must be sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE")
    elif missing := postgres_driver_missing():
        raise r.error("url", missing)
    pool_size = r.get("pool_size", int, 10)
    if not 1 <= pool_size <= 1000:
        raise r.error("pool_size", "must be between 1 and 1000")
    return StorageConfig(url=url, pool_size=pool_size)


def _parse_defaults(r: Reader) -> DefaultsConfig:
    r.unknown_keys({"locale", "auto_reply_interval", "hint_interval", "reply_window_days"})
    return DefaultsConfig(
        locale=r.get("locale", str, "en"),
        auto_reply_interval=positive(r, "auto_reply_interval",
                                      r.get("auto_reply_interval", float, 60.0), allow_zero=True),
        hint_interval=positive(r, "hint_interval", r.get("hint_interval", float, 3600.0),
                                allow_zero=True),
        reply_window_days=positive(r, "reply_window_days",
                                    r.get("reply_window_days", float, 30.0)),
    )


def _parse_webhooks(r: Reader) -> WebhooksConfig:
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
        timeout=positive(r, "timeout", r.get("timeout", float, 15.0)),
        retry_schedule=tuple(float(x) for x in schedule),
        disable_after_days=positive(r, "disable_after_days",
                                     r.get("disable_after_days", float, 5.0)),
        allow_private_networks=tuple(nets),
        max_concurrency_per_endpoint=int(positive(r, "max_concurrency_per_endpoint", r.get(
            "max_concurrency_per_endpoint", int, 8))))


def _parse_email(r: Reader, env: Mapping[str, str]) -> EmailConfig | None:
    """`[email]`, or None when the file has none: then no mail is sent."""
    if not r.table:
        return None
    r.unknown_keys({"host", "port", "starttls", "username", "password", "password_env", "from"})
    port = r.get("port", int, 587)
    if not 0 < port <= 65535:
        raise r.error("port", "must be between 1 and 65535")
    sender = r.get("from", str)
    if not is_email_address(sender):
        raise r.error("from", f"{sender!r} is not an email address")
    username = r.get("username", str, None)
    password = r.secret("password", env, required=False)
    if password is not None and username is None:
        raise r.error("password", "needs a `username` to log in with")
    return EmailConfig(host=r.get("host", str), port=port,
                       starttls=r.get("starttls", bool, True), username=username,
                       password=password, sender=sender)


def _parse_outbound(r: Reader) -> OutboundConfig:
    r.unknown_keys({"rate_per_second", "max_attempts", "retry_base", "retry_max"})
    return OutboundConfig(
        rate_per_second=positive(r, "rate_per_second", r.get("rate_per_second", float, 80.0)),
        max_attempts=int(positive(r, "max_attempts", r.get("max_attempts", int, 8))),
        retry_base=positive(r, "retry_base", r.get("retry_base", float, 2.0)),
        retry_max=positive(r, "retry_max", r.get("retry_max", float, 600.0)))


def _parse_media(r: Reader) -> MediaConfig:
    r.unknown_keys({"retention_days", "delivery_wait", "fetch_timeout", "max_bytes"})
    sizes = dict(DEFAULT_MEDIA_MAX_BYTES)
    limits = r.child("max_bytes", r.get("max_bytes", dict, {}))
    limits.unknown_keys(set(DEFAULT_MEDIA_MAX_BYTES))
    for kind in DEFAULT_MEDIA_MAX_BYTES:
        sizes[kind] = int(positive(limits, kind, limits.get(kind, int, sizes[kind])))
    return MediaConfig(
        retention_days=positive(r, "retention_days", r.get("retention_days", float, 30.0)),
        delivery_wait=positive(r, "delivery_wait", r.get("delivery_wait", float, 60.0),
                               allow_zero=True),
        fetch_timeout=positive(r, "fetch_timeout", r.get("fetch_timeout", float, 60.0)),
        max_bytes=sizes)


def _parse_plans(top: Reader, raw: Mapping[str, Any]) -> dict[str, PlanConfig]:
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
            messages_per_day=int(positive(r, "messages_per_day", r.get("messages_per_day", int))),
            max_recipients=int(positive(r, "max_recipients", r.get("max_recipients", int))),
            expires_after_days=r.get("expires_after_days", int, None),
            then=r.get("then", str, None), features=frozenset(features),
            inbound_webhooks=r.get("inbound_webhooks", bool, False),
            max_months=r.get("max_months", int, 12), min_months=r.get("min_months", int, 0))
    for plan in plans.values():
        if plan.then is not None and plan.then not in plans:
            raise top.child(f"plans.{plan.name}", {}).error("then", f"unknown plan {plan.then!r}")
    return plans


def _parse_subscribers(top: Reader, raw: list[Any], plans: Mapping[str, PlanConfig],
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
                        "since", "expires", "instances", "keyword", "webhooks", "email",
                        "self_service"})
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
        email = r.get("email", str, None)
        if email is not None and not is_email_address(email):
            raise r.error("email", f"{email!r} is not an email address")
        subs[sub_id] = SubscriberConfig(id=sub_id, client_id=client_id, secret_sha256=digest,
                                        plan=plan, since=since, expires=expires,
                                        instances=tuple(instances), keyword=keyword,
                                        webhooks=hooks, email=email,
                                        self_service=r.get("self_service", bool, False))
    return subs



def _parse_webhook(r: Reader, env: Mapping[str, str], sub_id: str,
                   allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
                   ) -> WebhookConfig:
    r.unknown_keys({"url", "format", "secret", "secret_env", "token", "token_env", "events",
                    "password", "password_env", "earlier_secrets"})
    url, password = r.get("url", str), None
    if not url.lower().startswith(("http:", "https:")):  # a broker: its password apart
        try:
            url, password = without_password(url)
        except ValueError as exc:
            raise r.error("url", f"is not a valid URL: {exc} (subscriber {sub_id!r})") from None
        password = r.secret("password", env, required=False) or password
    # Refused here is what no delivery could reach: a wrong scheme, a broker
    # whose client is not installed, an IP literal outside
    # allow_private_networks, an odd IPv4 spelling. Names are judged at each
    # delivery, once resolved.
    why = check_destination(url, allowed)
    if why is not None:
        raise r.error("url", f"{why} (subscriber {sub_id!r})")
    fmt = r.get("format", str, "standard")
    if fmt not in ("standard", "whatsmate"):
        raise r.error("format", "must be \"standard\" or \"whatsmate\"")
    secret = token = None
    earlier: tuple[EarlierSecret, ...] = ()
    if fmt == "standard":
        secret = _signing_secret(r, env)
        earlier = tuple(_earlier_secret(r.child(f"earlier_secrets[{i}]", t), env)
                        for i, t in enumerate(r.get("earlier_secrets", list, [])))
    else:
        token = r.secret("token", env, required=False) or ""
    events = r.get("events", list, list(WEBHOOK_EVENTS))
    bad = [e for e in events if e not in WEBHOOK_EVENTS]
    if bad:
        raise r.error("events", f"unknown event {bad[0]!r} (known: {', '.join(WEBHOOK_EVENTS)})")
    return WebhookConfig(url=url, format=fmt, secret=secret, token=token,
                         events=frozenset(events), password=password, earlier_secrets=earlier)


def _signing_secret(r: Reader, env: Mapping[str, str]) -> str:
    secret = r.secret("secret", env) or ""
    why = signing_secret_error(secret)
    if why is not None:
        raise r.error("secret", why)
    return secret


def _earlier_secret(r: Reader, env: Mapping[str, str]) -> EarlierSecret:
    """`{secret | secret_env, until}`: a replaced signing secret that still signs
    until `until`, a date-time with its offset."""
    if not isinstance(r.table, dict):
        raise r.error(None, "must be a table with `secret` (or `secret_env`) and `until`")
    r.unknown_keys({"secret", "secret_env", "until"})
    until = r.get("until", dt.datetime)
    if until.tzinfo is None:
        raise r.error("until", "needs its offset, e.g. 2026-12-08T12:00:00Z")
    return EarlierSecret(_signing_secret(r, env), until.timestamp())


def _parse_profile(top: Reader, r: Reader) -> Profile | None:
    """`[instances.profile]`, its picture path relative to the config file."""
    table = r.get("profile", dict, None)
    if table is None:
        return None
    base = Path(top.source).parent if top.source != "<config>" else Path.cwd()
    try:
        return load_profile(table, base)
    except ProfileError as exc:
        raise r.child("profile", table).error(None, str(exc)) from None


def _parse_instances(top: Reader, raw: list[Any], subscribers: Mapping[str, SubscriberConfig],
                     providers: Mapping[str, ProviderConfig], sections: Mapping[str, Any],
                     ) -> dict[int, InstanceConfig]:
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
        # An owner the file does not list may be a managed subscriber (in the
        # store): until it exists the number behaves as shared (check-config
        # says so).
        owner = r.get("owner", str, "shared")
        rate = r.get("rate_per_second", float, None)
        instances[inst_id] = InstanceConfig(id=inst_id, number=number, provider=provider,
                                            owner=owner, rate_per_second=rate,
                                            owner_missing=owner != "shared"
                                            and owner not in subscribers,
                                            options=options, profile=_parse_profile(top, r))
    for sub in subscribers.values():
        for inst in sub.instances:
            if inst not in instances:
                raise top.child("subscribers", {}).error(
                    "instances", f"subscriber {sub.id!r} names unknown instance {inst}")
    return instances
