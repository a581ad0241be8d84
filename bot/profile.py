"""The gateway number's business profile: its config (`[instances.profile]`),
the checks the config and the admin API share, and the keeper that applies it
through each provider at start, after a reload that changed it, and when the
admin sets it.

What was applied is kept in memory (a hash per instance), not in the store:
every start applies each configured profile once, which is cheap, idempotent
on the provider's side, and covers a profile changed at the provider by hand.
A profile set through the admin API lasts until the process stops; the
config's profile is the one that survives a restart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config.types import PROFILE_FIELDS, Profile
from bot.providers.base import (
    ProfileApplier,
    ProfileResult,
    Provider,
    unsupported_profile,
)

if TYPE_CHECKING:
    from bot.config import Config, InstanceConfig

log = logging.getLogger("wagate.profile")

# WhatsApp's own limits (Cloud API business profile; "about" on every account).
MAX_ABOUT = 139
MAX_DESCRIPTION = 512
MAX_EMAIL = 128
MAX_WEBSITES = 2
MAX_WEBSITE = 256
MAX_PICTURE = 5 * 1024 * 1024
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class ProfileError(ValueError):
    """A profile value that cannot be used; the message names the field."""


def picture_mime(data: bytes) -> str | None:
    """JPEG or PNG by their magic bytes (the two types WhatsApp takes); else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def build_profile(values: Mapping[str, Any], picture: bytes | None) -> Profile:
    """A Profile from config or admin values, checked; raises ProfileError."""
    unknown = sorted(set(values) - PROFILE_FIELDS)
    if unknown:
        raise ProfileError(f"{unknown[0]}: unknown key (expected one of: "
                           f"{', '.join(sorted(PROFILE_FIELDS))})")

    def text(key: str, limit: int) -> str | None:
        value = values.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not 0 < len(value.strip()) <= limit:
            raise ProfileError(f"{key}: must be a string of 1 to {limit} characters")
        return value.strip()

    email = text("email", MAX_EMAIL)
    if email is not None and not _EMAIL.fullmatch(email):
        raise ProfileError(f"email: {email!r} is not an email address")
    websites = values.get("websites", [])
    if not isinstance(websites, list | tuple) or len(websites) > MAX_WEBSITES or not all(
            isinstance(w, str) and re.fullmatch(r"https?://[^\s]+", w) and len(w) <= MAX_WEBSITE
            for w in websites):
        raise ProfileError(f"websites: must be a list of at most {MAX_WEBSITES} http(s) URLs "
                           f"of at most {MAX_WEBSITE} characters")
    mime = None
    if picture is not None:
        if not picture or len(picture) > MAX_PICTURE:
            raise ProfileError(f"picture: must be 1 byte to {MAX_PICTURE // (1024 * 1024)} MB")
        mime = picture_mime(picture)
        if mime is None:
            raise ProfileError("picture: must be a JPEG or PNG image")
    profile = Profile(picture=picture, picture_mime=mime, about=text("about", MAX_ABOUT),
                      description=text("description", MAX_DESCRIPTION), email=email,
                      websites=tuple(websites))
    if not profile.fields():
        raise ProfileError("sets nothing: give at least one of "
                           + ", ".join(sorted(PROFILE_FIELDS)))
    return profile


def load_profile(table: Mapping[str, Any], base_dir: Path) -> Profile:
    """`[instances.profile]`: the picture is a file path, relative to the config file."""
    picture = None
    if "picture" in table:
        raw = table["picture"]
        if not isinstance(raw, str) or not raw:
            raise ProfileError("picture: must be a file path")
        path = base_dir / raw
        try:
            with path.open("rb") as f:
                picture = f.read(MAX_PICTURE + 1)
        except OSError as exc:
            raise ProfileError(f"picture: cannot read {str(path)!r}: {exc.strerror}") from None
    return build_profile({k: v for k, v in table.items() if k != "picture"}, picture)


def decode_picture(value: Any) -> bytes | None:
    """The admin API's picture: base64 (a data: prefix allowed), or null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProfileError("picture: must be base64 text")
    try:
        return base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value,
                                validate=True)
    except (binascii.Error, ValueError):
        raise ProfileError("picture: is not valid base64") from None


def profile_hash(profile: Profile) -> str:
    parts = {"about": profile.about, "description": profile.description,
             "email": profile.email, "websites": list(profile.websites),
             "picture": hashlib.sha256(profile.picture).hexdigest() if profile.picture else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def profile_json(profile: Profile | None) -> dict[str, Any] | None:
    if profile is None:
        return None
    return {"about": profile.about, "description": profile.description, "email": profile.email,
            "websites": list(profile.websites),
            "picture": {"bytes": len(profile.picture), "type": profile.picture_mime,
                        "sha256": hashlib.sha256(profile.picture).hexdigest()}
            if profile.picture else None}


def lost_fields(provider: Provider, profile: Profile) -> list[str]:
    """The fields of this profile the provider cannot set."""
    supported = provider.profile_fields if provider.make_profiler else frozenset()
    return sorted(profile.fields() - supported)


@dataclass(slots=True, kw_only=True)
class ProfileState:
    """What happened to one instance's profile last time."""

    hash: str
    source: str  # config | admin
    status: str  # applied | partial | failed | unsupported
    applied: list[str] = field(default_factory=list)
    not_supported: list[str] = field(default_factory=list)
    error: str | None = None
    at: float = 0.0

    def json(self) -> dict[str, Any]:
        return {"hash": self.hash, "source": self.source, "status": self.status,
                "applied": self.applied, "not_supported": self.not_supported,
                "error": self.error, "at": self.at}


class ProfileKeeper:
    """Applies each instance's profile when it differs from the last one applied."""

    def __init__(self, config: Callable[[], Config], providers: Mapping[str, Provider],
                 profilers: Mapping[str, ProfileApplier]) -> None:
        self._config = config
        self.providers = providers
        self.profilers = profilers
        self.overrides: dict[int, Profile] = {}  # set through the admin API
        self.states: dict[int, ProfileState] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._wake.set()  # the first run applies what the config holds
        self.running = False

    def desired(self, instance: InstanceConfig) -> tuple[Profile | None, str]:
        override = self.overrides.get(instance.id)
        if override is not None:
            return override, "admin"
        return instance.profile, "config"

    def request_sync(self) -> None:
        """The config changed (a reload): apply what differs, in the background."""
        self._wake.set()

    async def run(self) -> None:
        self.running = True
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self.sync()
        finally:
            self.running = False

    async def sync(self) -> None:
        for instance in list(self._config().instances.values()):
            profile, source = self.desired(instance)
            if profile is None:
                self.states.pop(instance.id, None)
                continue
            state = self.states.get(instance.id)
            if state is None or state.hash != profile_hash(profile) or state.source != source:
                await self.apply(instance)

    async def apply(self, instance: InstanceConfig) -> ProfileState | None:
        """Apply the instance's profile now; failures are recorded, never raised."""
        async with self._lock:
            profile, source = self.desired(instance)
            if profile is None:
                return None
            provider = self.providers[instance.provider]
            profiler = self.profilers.get(provider.name)
            lost = lost_fields(provider, profile)
            try:
                result = (await profiler.apply_profile(instance, profile) if profiler
                          else unsupported_profile(provider))
            except Exception as exc:  # a provider bug must not stop the service
                log.exception("profile of instance %s", instance.id)
                result = ProfileResult(error=f"{type(exc).__name__}: {exc}"[:300])
            status = ("unsupported" if profiler is None else "failed" if result.error
                      else "partial" if lost else "applied")
            state = ProfileState(hash=profile_hash(profile), source=source, status=status,
                                 applied=sorted(result.applied), not_supported=lost,
                                 error=result.error, at=time.time())
            self.states[instance.id] = state
            if result.error:
                log.warning("profile of instance %s (%s) not applied: %s", instance.id,
                            provider.name, result.error)
            else:
                log.info("profile of instance %s applied through %s (%s)", instance.id,
                         provider.name, ", ".join(state.applied) or "nothing")
            return state

    def problems(self) -> list[str]:
        """Profiles that did not apply, for /readyz details (never a readiness failure)."""
        return [f"instance {i}: profile {s.status}: {s.error}" for i, s in
                sorted(self.states.items()) if s.status in ("failed", "unsupported")]

