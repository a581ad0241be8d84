"""The configuration reference, from the config loader itself.

Which keys each table takes, and each key's default, are read from the code:
a complete config is parsed with the loader's `Reader` recording every
`unknown_keys` set (the keys a table takes), every `get` default and every
`secret` (required or not). What each key means is written here, beside its
keys; `reference()` refuses a key the code takes that has no meaning here, and a
meaning for a key the code does not take, so the page cannot drift from the
code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import PROFILE_FIELDS
from bot.config.load import parse_config
from bot.config.reader import Reader

REQUIRED: Any = ...


@dataclass(frozen=True)
class Key:
    keys: tuple[str, ...]  # one row: `token` / `token_env`
    meaning: str
    default: str | None = None  # only where the code's own default would mislead


@dataclass(frozen=True)
class Table:
    name: str  # as the loader names it: "server", "instances", "subscribers.webhooks"
    header: str  # as a TOML file writes it
    note: str
    keys: tuple[Key, ...]


def k(keys: str, meaning: str, default: str | None = None) -> Key:
    return Key(tuple(keys.split()), meaning, default)


TABLES = (
    Table("server", "[server]", "", (
        k("host", "address to listen on"),
        k("port", "port to listen on"),
        k("pid_file", "written at start, removed at exit; `wagate reload --signal` reads it"),
        k("shutdown_timeout", "seconds to wait for requests in flight, then again for the "
          "workers, at SIGTERM"),
        k("body_timeout", "seconds a request body may take to arrive; a client that stalls "
          "halfway is answered 408 and its connection closed"),
        k("public_url", "the address the service is reached at (behind a proxy, the "
          "proxy's), without a trailing `/`, e.g. `https://gateway.example`: the base of the "
          "media links in webhooks (see [Media](../receiving.md#media)) and of the URLs Twilio "
          "signs and fetches media at (unless `[twilio] public_url` says otherwise), an origin "
          "the pages' forms may come from, and when it is https the session cookies are "
          "`Secure` (see [Behind a proxy](security.md#behind-a-proxy))",
          "`http://HOST:PORT` as it listens"),
        k("trusted_proxies", "addresses or networks (CIDR) of the proxies in front of the "
          "service: only their `X-Forwarded-For` (the client's address in logs and the login "
          "throttle) and `X-Forwarded-Proto` (`Secure` cookies) are believed", "`[]`"),
    )),
    Table("storage", "[storage]", "", (
        k("url", "the SQLite file (`sqlite:///` + path, relative to the working directory), "
          "or a PostgreSQL database: `postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE` (see "
          "[PostgreSQL](scaling.md))", '`"sqlite:///./wagate.db"`'),
        k("url_env", "read `url` from this environment variable instead (a PostgreSQL "
          "password stays out of the file)", "none"),
        k("pool_size", "PostgreSQL: connections each process opens at most (1–1000)"),
    )),
    Table("admin", "[admin]", "", (
        k("token token_env", "bearer token of the admin API, the dashboard and the sandbox "
          "endpoints; at least 16 characters (e.g. `openssl rand -base64 24`)"),
    )),
    Table("defaults", "[defaults]", "", (
        k("locale", "the locale used when nothing else decides; a folder of that name must "
          "exist"),
        k("auto_reply_interval", "seconds: at most one auto-reply per user (or group) in this "
          "time, state-change confirmations excepted"),
        k("hint_interval", "seconds: at most one \"say Hi to register\" hint per unregistered "
          "user"),
        k("reply_window_days", "days a shared number routes a user's messages to the "
          "subscriber that last sent to them (or that their keyword named)"),
    )),
    Table("meta", "[meta]", "only when an instance uses provider `meta`", (
        k("app_secret app_secret_env", "checks `X-Hub-Signature-256` on every webhook POST"),
        k("verify_token verify_token_env", "answers Meta's `hub.verify_token` handshake"),
        k("access_token access_token_env", "bearer token for Graph API calls"),
        k("graph_base_url", "Graph API base (tests point it at a local server)"),
        k("api_version", "Graph API version in every URL"),
        k("timeout", "seconds per Graph API call"),
        k("app_id", "the Meta app's id: the resumable upload of a profile picture"),
    )),
    Table("twilio", "[twilio]", "only when an instance uses provider `twilio`", (
        k("account_sid account_sid_env", "the Twilio Account SID (`AC` and 32 hex digits)"),
        k("auth_token auth_token_env", "basic auth of the Messages API; checks "
          "`X-Twilio-Signature`; keys the media URLs"),
        k("public_url", "the base URL Twilio calls wagate at, as Twilio signs it; "
          "`[server] public_url` when not given here", "`[server] public_url`"),
        k("api_base_url", "Messages API base (tests point it at a local server)"),
        k("timeout", "seconds per Messages API call"),
    )),
    Table("waha", "[waha]", "only when an instance uses provider `waha`", (
        k("base_url", "the WAHA server, http(s)"),
        k("api_key api_key_env", "WAHA's `X-Api-Key`"),
        k("hmac_key hmac_key_env", "checks `X-Webhook-Hmac` on every webhook POST"),
        k("timeout", "seconds per WAHA call"),
    )),
    Table("sandbox", "[sandbox]", "optional", (
        k("delivered_after", "seconds after a sandbox send at which it reports `delivered` "
          "itself (a `message.status` webhook, as a provider's); absent: never", "none"),
        k("read_after", "the same for `read`; not less than `delivered_after`", "none"),
    )),
    Table("webhooks", "[webhooks]", "", (
        k("timeout", "seconds per delivery attempt"),
        k("retry_schedule", "seconds before each attempt (jittered; `Retry-After` honoured)"),
        k("disable_after_days", "an endpoint failing this long is disabled"),
        k("allow_private_networks", "CIDRs that webhook URLs may point or resolve into "
          "(non-public addresses are refused otherwise; see "
          "[Delivery](../receiving.md#delivery))"),
        k("max_concurrency_per_endpoint", "deliveries in flight per endpoint"),
    )),
    Table("outbound", "[outbound]", "", (
        k("rate_per_second", "messages per second per gateway number (an instance may "
          "override)"),
        k("max_attempts", "attempts before a transiently failing message fails"),
        k("retry_base", "seconds: the first retry delay, doubled each attempt (jittered)"),
        k("retry_max", "seconds: the longest retry delay"),
    )),
    Table("media", "[media]", "files users send: fetched, kept and linked (see "
          "[Media](../receiving.md#media))", (
        k("retention_days", "a file is kept this long, and its link lives as long; then it "
          "is deleted"),
        k("delivery_wait", "seconds a `message.received` carrying a file waits for it; past "
          "that it goes with `media.error`"),
        k("fetch_timeout", "seconds one download from the provider may take"),
        k("max_bytes", "the largest file kept, per kind: a table, below", "the table below"),
    )),
    Table("media.max_bytes", "[media.max_bytes]", "bytes; a larger file is not kept and its "
          "`message.received` says so in `media.error`", (
        k("image", "Meta's limit, 5 MB"),
        k("video", "16 MB"),
        k("audio", "16 MB"),
        k("voice", "16 MB"),
        k("sticker", "500 KB (an animated sticker's limit)"),
        k("document", "100 MB; also any kind not named here"),
    )),
    Table("email", "[email]", "optional: the SMTP server the service's mails to subscribers "
          "leave through (see [Email](../operations/email.md)); without it no mail is sent", (
              k("host", "the SMTP server's name or address"),
              k("port", "its port (587: submission with STARTTLS)"),
              k("starttls", "upgrade the connection with STARTTLS (the server's certificate "
                "is verified) before logging in"),
              k("username", "the login, if the server wants one", "none"),
              k("password password_env", "its password; never shown", "none"),
              k("from", "the From: address"),
          )),
    Table("locales", "[locales]", "", (
        k("dir", "catalogs and keyword lists; relative to the config file. Left out, a "
          "checkout's top-level `locales/`, else (an installed wheel) the copy inside the "
          "package", "the `locales/` folder shipped with wagate"),
    )),
    Table("instances", "[[instances]]", "one per gateway number", (
        k("id", "positive integer, the `{n}` of the send API URLs; unique"),
        k("number", "the number, with country code"),
        k("provider", "`sandbox`, `meta`, `twilio` or `waha`"),
        k("owner", "`shared`, or a subscriber id: a dedicated number (a managed subscriber "
          "not created yet: shared until it is)"),
        k("phone_number_id", "Meta's id of the number; unique", "required for `meta`"),
        k("session", "the WAHA session of the number; unique", '`"default"` for `waha`'),
        k("rate_per_second", "this number's pace", "`[outbound] rate_per_second`"),
        k("profile", "the number's business profile: the table below", "none"),
    )),
    Table("instances.profile", "[instances.profile]",
          "the number's business profile (see [Business profile](../providers/profile.md))", (
              k("picture", "JPEG or PNG file, at most 5 MB, relative to the config file",
                "none"),
              k("about description email", "at most 139 / 512 / 128 characters", "none"),
              k("websites", "at most two http(s) URLs", "`[]`"),
          )),
    Table("plans.NAME", "[plans.NAME]", "`trial`, `forever_green`, `enterprise` built in; a "
          "table overrides a built-in plan's figures or adds a custom plan", (
              k("messages_per_day", "messages per 24-hour quota period",
                "required for a new plan"),
              k("max_recipients", "distinct recipients in total (a group counts as one)",
                "required for a new plan"),
              k("expires_after_days", "the plan lasts this long from `since`, then becomes "
                "`then`", "none (`trial`: 14)"),
              k("then", "the plan after expiry", "none (`trial`: `forever_green`)"),
              k("features", "of `text`, `image`, `document`, `url`, `group`", "all"),
              k("inbound_webhooks", "whether inbound messages are forwarded",
                "`false` (`enterprise`: `true`)"),
              k("max_months min_months", "bounds of a subscription's length",
                "`12` / `0` (`enterprise`: 3)"),
          )),
    Table("subscribers", "[[subscribers]]", "", (
        k("id", "unique; `shared` is reserved"),
        k("client_id", "`X-WM-CLIENT-ID`; unique"),
        k("secret secret_env secret_sha256", "`X-WM-CLIENT-SECRET`; only its SHA-256 is kept "
          "in memory"),
        k("plan", "a plan name"),
        k("since", "start of the subscription (date)", "`1970-01-01`"),
        k("expires", "end of the subscription (date), not before `since`"),
        k("instances", "instance ids this subscriber may send from"),
        k("keyword", "registration keyword (`Hola ACME`); one word, unique"),
        k("webhooks", "the subscriber's webhooks: the table below", "`[]`"),
        k("email", "where its mails go (welcome, reminders before `expires`, a trial's "
          "change of plan) when there is an `[email]`", "none"),
        k("self_service", "may rotate its own secret (`POST /v3/account/secrets`); the new "
          "one is kept in the store and overrides this entry's", "`false`"),
    )),
    Table("subscribers.webhooks", "[[subscribers.webhooks]]", "", (
        k("url", "http(s) URL, or a broker: `nats://host/subject`, "
          "`amqp://host/vhost?exchange=x&routing_key=k`, `redis://host/0?stream=s` (see "
          "[Publishing to a broker](../brokers.md))"),
        k("format", "`standard` (Standard Webhooks, signed) or `whatsmate`"),
        k("password password_env", "a broker's password (else the URL's); never shown", "none"),
        k("secret secret_env", "`whsec_...` signing secret", "required for `standard`"),
        k("token token_env", "`whatsmate`: the `token` field of each POST", '`""`'),
        k("events", "of `message.received`, `user.registered`, `user.unregistered`, "
          "`message.status`", "all"),
        k("earlier_secrets", "`standard`: signing secrets being replaced, each still "
          "signing beside `secret` until its time: the table below", "`[]`"),
    )),
    Table("subscribers.webhooks.earlier_secrets", "[[subscribers.webhooks.earlier_secrets]]",
          "while one is valid every delivery carries a signature per secret, "
          "space-separated (`v1,<new> v1,<old>`): see [Rotating a signing secret]"
          "(../receiving.md#rotating-a-signing-secret)", (
              k("secret secret_env", "the earlier `whsec_...` secret"),
              k("until", "when it stops signing: a date-time with its offset, e.g. "
                "`2026-12-08T12:00:00Z`"),
          )),
    Table("templates", "[[templates]]", "message templates, for numbers with a 24-hour "
          "window (see [Meta](../providers/meta.md#the-24-hour-window-and-templates))", (
              k("name", "the template's name as approved at Meta; a Twilio Content "
                "template's `ContentSid` (`HX…`)"),
              k("instances", "the instances it is for; every meta (or twilio) number "
                "otherwise"),
              k("subscriber", "a subscriber's own template; every subscriber's otherwise"),
              k("category", "`utility`, `marketing` or `authentication`"),
              k("use", "`notification`: sent automatically outside the window; none: for "
                "explicit sends only"),
              k("parameters", "the body's parameters: a count, or a list of names (a "
                "notification template takes 0 or 1: the message text fills `{{1}}`)"),
              k("header", "`none`, `image` or `document`"),
              k("languages", "the template's language per locale (`pt_BR`, then `pt`, then "
                "`\"*\"`)"),
          )),
)

# A config that takes every branch of the loader, so every table's keys are read.
_PROBE = """
[server]
[storage]
[admin]
token = "probe-admin-token"
[defaults]
[meta]
app_secret = "s"
verify_token = "v"
access_token = "a"
[twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "t"
public_url = "https://gateway.example"
[waha]
base_url = "http://127.0.0.1:3000"
api_key = "k"
hmac_key = "h"
[sandbox]
[webhooks]
[outbound]
[email]
host = "smtp.example"
username = "probe"
password = "probe"
from = "gateway@example.com"
[locales]
[plans.custom]
messages_per_day = 1
max_recipients = 1
[[instances]]
id = 1
number = "+15550001111"
[[instances]]
id = 2
number = "+15550002222"
provider = "meta"
phone_number_id = "1"
[instances.profile]
about = "probe"
[[instances]]
id = 3
number = "+15550003333"
provider = "twilio"
[[instances]]
id = 4
number = "+15550004444"
provider = "waha"
[[subscribers]]
id = "probe"
client_id = "probe"
secret = "probe"
[[subscribers.webhooks]]
url = "https://hooks.example/standard"
secret = "whsec_cHJvYmU="
[[subscribers.webhooks.earlier_secrets]]
secret = "whsec_cHJvYmUy"
until = 2026-01-01T00:00:00Z
[[subscribers.webhooks]]
url = "https://hooks.example/whatsmate"
format = "whatsmate"
[[templates]]
name = "probe"
category = "utility"
languages = { "*" = "en_US" }
"""


@dataclass
class _Seen:
    keys: dict[str, set[str]]  # table -> the keys it takes
    defaults: dict[tuple[str, str], Any]  # (table, key) -> default, REQUIRED when none


def _table(where: str) -> str:
    """`subscribers[0].webhooks[1]` -> `subscribers.webhooks`; `plans.trial` -> `plans.NAME`."""
    name = re.sub(r"\[\d+\]", "", where)
    return "plans.NAME" if name.startswith("plans.") else name


@contextmanager
def _recording() -> Iterator[_Seen]:
    seen = _Seen({}, {})
    get, secret, unknown_keys = Reader.get, Reader.secret, Reader.unknown_keys

    def recorded_get(self: Reader, key: str, kind: Any, default: Any = REQUIRED) -> Any:
        seen.defaults[(_table(self.where), key)] = default
        return get(self, key, kind, default)

    def recorded_secret(self: Reader, key: str, env: Any, *, required: bool = True) -> Any:
        value = secret(self, key, env, required=required)
        seen.defaults[(_table(self.where), key)] = REQUIRED if required else None
        return value

    def recorded_unknown_keys(self: Reader, allowed: set[str]) -> None:
        seen.keys.setdefault(_table(self.where), set()).update(allowed)
        unknown_keys(self, allowed)

    Reader.get, Reader.secret, Reader.unknown_keys = (  # type: ignore[method-assign]
        recorded_get, recorded_secret, recorded_unknown_keys)
    try:
        yield seen
    finally:
        Reader.get, Reader.secret, Reader.unknown_keys = (  # type: ignore[method-assign]
            get, secret, unknown_keys)


def read_from_code() -> _Seen:
    """Every table's keys and defaults, as the loader reads them."""
    with _recording() as seen:
        parse_config(_PROBE, env={}, base_dir=str(Path.cwd()))
    top = seen.keys.pop("", set())
    seen.keys["instances.profile"] = set(PROFILE_FIELDS)  # read by bot.profile, not a Reader
    for table in top - {"plans"}:
        if table not in seen.keys:
            raise AssertionError(f"the probe config leaves [{table}] unread")
    return seen


def _toml(value: Any) -> str:
    if value is None:
        return "none"
    if value is REQUIRED:
        return "required"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list | tuple):
        return "`[" + ", ".join(_toml(v).strip("`") for v in value) + "]`"
    return f"`{value}`"


def reference() -> list[str]:
    """The reference's lines, a table per TOML table; AssertionError when the
    meanings and the code disagree."""
    seen = read_from_code()
    documented = {t.name: {key for row in t.keys for key in row.keys} for t in TABLES}
    problems = [f"[{table}] {key}: taken by the code, no meaning in tools/config_reference.py"
                for table, keys in seen.keys.items()
                for key in sorted(keys - documented.get(table, set()))]
    problems += [f"[{table}] {key}: has a meaning, but the code does not take it"
                 for table, keys in documented.items()
                 for key in sorted(keys - seen.keys.get(table, set()))]
    if problems:
        raise AssertionError("\n".join(problems))
    out = []
    for t in TABLES:
        out += [f"## `{t.header}`", ""] + ([t.note[:1].upper() + t.note[1:] + ".", ""]
                                            if t.note else [])
        out += ["| key | default | meaning |", "|---|---|---|"]
        for row in t.keys:
            default = row.default
            if default is None:
                found = [seen.defaults[(t.name, key)] for key in row.keys
                         if (t.name, key) in seen.defaults]
                default = _toml(found[0]) if found else "required"
            names = " / ".join(f"`{key}`" for key in row.keys)
            out.append(f"| {names} | {default} | {row.meaning} |")
        out.append("")
    return out
