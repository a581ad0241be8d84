"""Webhook endpoints managed at runtime: a subscriber's own (`/v3/account/
webhooks`, the portal) or the admin's for it (`/admin/subscribers/{id}/
webhooks`), kept in the store beside the config file's, shared by the API and
the pages.

Each change is one store transaction with its audit row, then reloaded here
before the caller answers (bot/services/managed.py), so the next delivery in
this process or another uses it. The address rules of webhooks apply when an
endpoint is saved: its URL's scheme and host are checked, and a name is
resolved now, so a URL that could never receive a delivery is refused with
why. A broker's password is kept apart and never shown; signing secrets and
whatsmate tokens are shown once, when issued."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yarl import URL

from bot.config import WEBHOOK_EVENTS, Config, SubscriberConfig
from bot.config.managed import ManagedEndpoint
from bot.forwarding.destinations import check_destination, module_for, without_password
from bot.forwarding.destinations.base import public_address
from bot.forwarding.payloads import new_signing_secret
from bot.forwarding.safety import Network, RefusedAddress
from bot.services.managed import ManagedState
from bot.services.subscribers import Actor, Refused, overlap_hours_of, self_served
from bot.store.models import NewEndpoint
from bot.store.protocol import Store

MAX_ENDPOINTS = 20  # per subscriber, in the store (the file's are not counted)
MAX_URL = 2000
MAX_DESCRIPTION = 200
FORMATS = ("standard", "whatsmate")
FIELDS = ("url", "format", "events", "enabled", "description")
RESOLVE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Saved:
    """An endpoint as saved, with what was issued and is shown this once."""

    endpoint: ManagedEndpoint
    secret: str | None = None  # a new signing secret (standard)
    token: str | None = None  # a new token (whatsmate)
    older_until: float | None = None  # when the earlier signing secrets stop


def new_token() -> str:
    return secrets.token_urlsafe(24)


async def url_refusal(url: str, allowed: Sequence[Network]) -> str | None:
    """Why `url` (without its password) can never receive webhooks, or None:
    the rules checked at config load, then its host resolved now and judged
    like each delivery's (a name that resolves only to private addresses is
    refused, as is one that does not resolve)."""
    why = check_destination(url, allowed)
    if why is not None:
        return why
    parsed = URL(url)
    host = parsed.raw_host or ""
    # http(s) URLs have their default port from yarl; a broker's is its module's.
    port = parsed.port if parsed.port is not None else module_for(url).PORT
    try:
        await asyncio.wait_for(public_address(host, port, lambda: allowed), RESOLVE_TIMEOUT)
    except RefusedAddress as exc:
        return f"{url!r} is refused: {exc}"
    except (OSError, TimeoutError) as exc:
        return f"{url!r} is refused: {host} does not resolve ({exc.strerror or exc})" \
            if isinstance(exc, OSError) else f"{url!r} is refused: {host} did not resolve " \
                                              f"within {RESOLVE_TIMEOUT:g} s"
    return None


def _text(raw: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Refused("invalid", f"{name} must be a string of at most {limit} characters, "
                                 "or null")
    return value.strip() or None


@dataclass(frozen=True, slots=True)
class Endpoints:
    store: Store
    state: ManagedState
    now: Callable[[], float]

    def owner(self, config: Config, subscriber_id: str) -> SubscriberConfig:
        """A live subscriber whose endpoints may be managed here: a managed one,
        or a provisioned one whose file entry says `self_service = true`."""
        return self_served(config, subscriber_id, "its webhooks are set there")

    def list(self, subscriber_id: str) -> tuple[ManagedEndpoint, ...]:
        return self.state.holder.managed.endpoints.get(subscriber_id, ())

    def get(self, config: Config, subscriber_id: str, endpoint_id: str) -> ManagedEndpoint:
        """An endpoint of the subscriber's in the store (looked up before the
        owner is judged: an unknown id is a 404 for anyone)."""
        found = next((e for e in self.list(subscriber_id) if e.id == endpoint_id), None)
        if found is not None:
            return found
        sub = config.subscribers.get(subscriber_id)
        if sub is not None and any(h.key == endpoint_id for h in sub.webhooks):
            raise Refused("provisioned", f"webhook endpoint {endpoint_id!r} is set in the "
                                         f"config file {config.path or '(none)'}: change it "
                                         "there")
        raise Refused("unknown_endpoint", f"no webhook endpoint {endpoint_id[:80]!r} of "
                                          f"subscriber {subscriber_id[:80]!r}")

    async def _fields(self, config: Config, raw: Mapping[str, Any],
                      current: ManagedEndpoint | None) -> dict[str, Any]:
        """The given fields, checked; `current`: the endpoint a PATCH changes."""
        if unknown := sorted(set(raw) - set(FIELDS)):
            raise Refused("invalid", f"unknown field {unknown[0][:40]!r} (known: "
                                     f"{', '.join(FIELDS)})")
        out: dict[str, Any] = {}
        if "url" in raw or current is None:
            url = raw.get("url")
            if url is None:
                raise Refused("missing", "url is required")
            if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL:
                raise Refused("invalid", f"url must be a string of at most {MAX_URL} "
                                         "characters")
            try:
                shown, password = without_password(url.strip())
            except ValueError as exc:
                raise Refused("invalid_url", f"url is not a valid URL: {exc}") from None
            if password is not None and shown.lower().startswith(("http:", "https:")):
                raise Refused("invalid_url", f"{shown!r} is refused: an http(s) endpoint "
                                             "takes no password in its URL (a delivery is "
                                             "proved by its signature)")
            why = await url_refusal(shown, config.webhooks.allow_private_networks)
            if why is not None:
                raise Refused("invalid_url", why)
            out["url"], out["password"] = shown, password
        if "format" in raw or current is None:
            fmt = raw.get("format", "standard")
            if fmt not in FORMATS:
                raise Refused("invalid", 'format must be "standard" or "whatsmate"')
            out["format"] = fmt
        if "events" in raw or current is None:
            events = raw.get("events", list(WEBHOOK_EVENTS))
            if (not isinstance(events, list) or not events
                    or not all(isinstance(e, str) and e in WEBHOOK_EVENTS for e in events)):
                raise Refused("invalid", f"events must be a non-empty list of: "
                                         f"{', '.join(WEBHOOK_EVENTS)}")
            out["events"] = tuple(dict.fromkeys(events))
        if "enabled" in raw or current is None:
            enabled = raw.get("enabled", True)
            if not isinstance(enabled, bool):
                raise Refused("invalid", "enabled must be true or false")
            out["enabled"] = enabled
        if "description" in raw:
            out["description"] = _text(raw, "description", MAX_DESCRIPTION)
        return out

    async def _done(self, changed: bool, subscriber_id: str,
                    endpoint_id: str) -> ManagedEndpoint:
        if not changed:
            raise Refused("unknown_endpoint", f"no webhook endpoint {endpoint_id[:80]!r} of "
                                              f"subscriber {subscriber_id[:80]!r}")
        await self.state.refresh()
        return self.get(self.state.holder.current.config, subscriber_id, endpoint_id)

    async def create(self, config: Config, subscriber_id: str, raw: Mapping[str, Any],
                     actor: Actor) -> Saved:
        sub = self.owner(config, subscriber_id)
        if len(self.list(sub.id)) >= MAX_ENDPOINTS:
            raise Refused("too_many", f"subscriber {sub.id!r} has {MAX_ENDPOINTS} endpoints "
                                      "already: delete one first")
        fields = await self._fields(config, raw, None)
        secret, token = new_signing_secret(), new_token()
        endpoint = NewEndpoint(id=f"ep_{secrets.token_hex(8)}", subscriber_id=sub.id,
                               url=fields["url"], password=fields["password"],
                               format=fields["format"], events=fields["events"],
                               enabled=fields["enabled"], description=fields.get("description"),
                               token=token)
        created = await self.store.create_endpoint(
            endpoint, secret, actor.entry("endpoint.created", sub.id, **_audited(fields),
                                          endpoint=endpoint.id), self.now(),
            managed=sub.managed_by == "store")
        saved = await self._done(created, sub.id, endpoint.id)
        standard = endpoint.format == "standard"
        return Saved(saved, secret=secret if standard else None,
                     token=None if standard else token)

    async def update(self, config: Config, subscriber_id: str, endpoint_id: str,
                     raw: Mapping[str, Any], actor: Actor) -> Saved:
        """A change of format issues the new format's credential, shown in the answer."""
        current = self.get(config, subscriber_id, endpoint_id)
        sub = self.owner(config, subscriber_id)
        fields = await self._fields(config, raw, current)
        issued: dict[str, str] = {}
        if fields.get("format", current.hook.format) != current.hook.format:
            if fields["format"] == "whatsmate":
                issued["token"] = fields["token"] = new_token()
            else:
                issued["secret"] = new_signing_secret()
        now = self.now()
        changed = await self.store.update_endpoint(
            sub.id, endpoint_id, fields, actor.entry("endpoint.updated", sub.id,
                                                     **_audited(fields), endpoint=endpoint_id),
            now, managed=sub.managed_by == "store")
        if changed and "secret" in issued:
            changed = await self.store.rotate_endpoint_secret(
                sub.id, endpoint_id, issued["secret"], now,
                actor.entry("endpoint.secret_rotated", sub.id, endpoint=endpoint_id,
                            overlap_hours=0), now, managed=sub.managed_by == "store")
        if changed and fields.get("enabled"):  # also out of a disabling by failures
            await self.store.enable_endpoint(endpoint_id, sub.id)
        return Saved(await self._done(changed, sub.id, endpoint_id), **issued)

    async def delete(self, config: Config, subscriber_id: str, endpoint_id: str,
                     actor: Actor) -> None:
        self.get(config, subscriber_id, endpoint_id)
        sub = self.owner(config, subscriber_id)
        changed = await self.store.delete_endpoint(
            sub.id, endpoint_id, actor.entry("endpoint.deleted", sub.id, endpoint=endpoint_id),
            self.now())
        if not changed:
            raise Refused("unknown_endpoint", f"no webhook endpoint {endpoint_id[:80]!r}")
        await self.state.refresh()

    async def rotate(self, config: Config, subscriber_id: str, endpoint_id: str,
                     overlap_hours: Any, actor: Actor) -> Saved:
        """A new signing secret; the earlier ones go on signing `overlap_hours`
        (0: they stop now). A whatsmate endpoint gets a new token, in force at
        once (its body carries one token: there is no overlap to give)."""
        current = self.get(config, subscriber_id, endpoint_id)
        sub = self.owner(config, subscriber_id)
        hours = overlap_hours_of(overlap_hours)
        now = self.now()
        until = now + hours * 3600
        managed = sub.managed_by == "store"
        if current.hook.format == "whatsmate":
            token = new_token()
            changed = await self.store.update_endpoint(
                sub.id, endpoint_id, {"token": token},
                actor.entry("endpoint.token_rotated", sub.id, endpoint=endpoint_id), now,
                managed=managed)
            return Saved(await self._done(changed, sub.id, endpoint_id), token=token)
        secret = new_signing_secret()
        changed = await self.store.rotate_endpoint_secret(
            sub.id, endpoint_id, secret, until,
            actor.entry("endpoint.secret_rotated", sub.id, endpoint=endpoint_id,
                        overlap_hours=hours), now, managed=managed)
        return Saved(await self._done(changed, sub.id, endpoint_id), secret=secret,
                     older_until=until)


def _audited(fields: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit log says of a change: never a password or a token."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()
            if k not in ("password", "token")} | (
        {"password": "(set)"} if fields.get("password") else {})
