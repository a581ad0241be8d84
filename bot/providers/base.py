"""The interface every provider package implements.

A provider is one package `bot/providers/<name>/` that exports `PROVIDER`, a
`Provider`: its config section and instance keys (`config.py`), its inbound
sub-app mounted at `/webhooks/<name>` (`inbound.py`), its sender
(`outbound.py`) and its capabilities and status mapping (`caps.py`). The rest
of the service asks these; it never tests a provider's name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import aiohttp
from aiohttp import web

from bot.config.types import Profile
from bot.kinds import Status

if TYPE_CHECKING:
    from bot.config.reader import Reader
    from bot.config.types import InstanceConfig
    from bot.events import StatusUpdate
    from bot.templates import TemplateUse


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportMessage:
    """One outbound message as a provider sends it: no store row, no subscriber."""

    id: str  # our message id (the one the send API answered)
    to: str | None  # E.164, for a message to a person
    group_id: str | None  # the provider's group id, for a message to a group
    kind: str  # text | url | image | document
    text: str | None = None
    caption: str | None = None
    filename: str | None = None
    mime: str | None = None
    media: bytes | None = None  # the image or document; None when it is gone
    # Sent as this approved template instead (bot/templates.py TemplateUse); a
    # media header carries `media`.
    template: TemplateUse | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    provider_message_id: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    transient: bool = False
    retry_after: float | None = None
    # The provider fetches the media from us later (a signed URL): the store
    # keeps them until the message's first status.
    keep_media: bool = False

    @property
    def ok(self) -> bool:
        return self.provider_message_id is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What a provider can carry; the send API refuses the rest before queueing."""

    media_kinds: frozenset[str] = frozenset({"image", "document"})
    # Image types it takes (None: every type the send API decodes), and how a
    # refusal names them: "instance 2 sends through <image_refusal>".
    image_types: frozenset[str] | None = None
    image_refusal: str = ""
    groups: bool = True
    templates: bool = False
    service_window: bool = False  # a 24-hour customer-service window applies
    # The provider's error codes for "outside the window" (Meta 131047): the
    # message goes once more as its notification template (bot/window.py).
    window_codes: frozenset[int] = frozenset()
    # The provider's status words as ours (read through `Status.parse`);
    # a word mapped to None is known and ignored (e.g. "queued").
    statuses: Mapping[str, Status | None] = field(default_factory=dict)


class Sender(Protocol):
    async def send(self, instance: InstanceConfig, message: TransportMessage) -> SendResult:
        """Send one message; never raises for provider or network errors."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderContext:
    """What a sender is built from, once per app."""

    section: Callable[[], Any]  # the provider's config section now (None when absent)
    session: aiohttp.ClientSession  # the app's shared client session
    # A status the provider learns without a webhook (the sandbox's own), handed
    # to the pipeline after a delay in seconds as if the provider had posted it.
    report_later: Callable[[StatusUpdate, float], None] = lambda status, delay: None


class ProviderConfig(Protocol):
    """A provider's part of the config file: its `[section]` and its instance keys."""

    section: str | None  # the TOML table it reads ("meta"), None when it has none
    section_required: bool  # an instance using it needs the section
    instance_keys: frozenset[str]  # keys it adds to [[instances]]

    def parse_section(self, r: Reader, env: Mapping[str, str]) -> Any:
        """The validated section (a frozen dataclass); raise r.error(...) if wrong."""
        ...

    def parse_instance(self, r: Reader, section: Any) -> dict[str, Any]:
        """The provider's keys of one instance, validated (become InstanceConfig.options)."""
        ...

    def finish(self, section: Any, instances: Mapping[int, InstanceConfig],
               error: Callable[[int, str, str], Exception]) -> Any:
        """The section with lookup tables over its instances compiled in; raise
        error(instance_id, key, message) for a conflict between instances."""
        ...


# ---- optional hooks: a sender that lacks one gets the default below


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileResult:
    applied: frozenset[str] = frozenset()  # the fields the provider took
    error: str | None = None  # why it failed (None: it did not)


class ProfileApplier(Protocol):
    """Sets a number's business profile through the provider (Provider.make_profiler)."""

    async def apply_profile(self, instance: InstanceConfig, profile: Profile) -> ProfileResult:
        """Apply the fields the provider supports; never raises for provider or
        network errors."""
        ...


@runtime_checkable
class ReadinessSender(Protocol):
    """A sender that can tell whether its numbers can send now (e.g. WAHA's session)."""

    async def readiness(self, instances: Sequence[InstanceConfig]) -> list[str]:
        """Why some of these instances cannot send now; empty when all can."""
        ...


async def readiness_of(sender: Sender, instances: Sequence[InstanceConfig]) -> list[str]:
    """The default: a sender without a readiness hook is always ready."""
    if isinstance(sender, ReadinessSender):
        return await sender.readiness(instances)
    return []


def unsupported_profile(provider: Provider) -> ProfileResult:
    """The default: a provider without profile support says so, and applies nothing."""
    return ProfileResult(error=f"provider {provider.name} cannot set the business profile "
                         "(its API does not offer it)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Provider:
    name: str
    caps: Capabilities
    config: ProviderConfig
    make_sender: Callable[[SenderContext], Sender]
    # Its inbound routes, mounted at /webhooks/<name> (a new sub-app per app).
    # Both are built when an app is: the package imports its HTTP side (and the
    # web helpers under it) only then, so reading the config does not.
    inbound: Callable[[], web.Application] | None = None
    # Routes of its own elsewhere (the sandbox's /sandbox/*).
    routes: Callable[[], web.RouteTableDef] | None = None
    # What answers GET /media/{id} for an id not of a user's file (bot/web/media.py):
    # a message's media the provider fetches from us (Twilio's).
    serve_media: Callable[[], Callable[[web.Request], Awaitable[web.StreamResponse]]] | None \
        = None
    # The business-profile fields it can set, and what sets them (None: the
    # provider cannot; see unsupported_profile). check-config names the fields
    # an instance's profile would lose.
    profile_fields: frozenset[str] = frozenset()
    make_profiler: Callable[[SenderContext], ProfileApplier] | None = None
    # How the files users send are fetched: a bot.workers.media_fetch.MediaFetch
    # (imported, like `inbound`, only when an app is built). None: no media.
    media: Callable[[], Any] | None = None

