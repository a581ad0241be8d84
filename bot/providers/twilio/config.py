"""The `[twilio]` section; a twilio instance's sender is its `number`."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.config.reader import Reader, base_url, check_http_url, positive
from bot.config.types import InstanceConfig

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    public_url: str  # the base URL Twilio calls us at, as it signs it (no trailing /);
    # [server] public_url unless given here
    api_base_url: str = "https://api.twilio.com"
    timeout: float = 15.0
    # Compiled at load: which instance a callback's To (or a status's From) means.
    instances_by_number: Mapping[str, InstanceConfig] = field(default_factory=dict)

    @property
    def media_key(self) -> bytes:
        """The key of the signed media URLs: derived from the auth token, so it
        changes with it and is never the token itself."""
        return hmac.new(self.auth_token.encode(), b"wagate media url", hashlib.sha256).digest()


class TwilioConfigPart:
    section = "twilio"
    section_required = True
    instance_keys: frozenset[str] = frozenset()

    def parse_section(self, r: Reader, env: Mapping[str, str]) -> TwilioConfig:
        r.unknown_keys({"account_sid", "account_sid_env", "auth_token", "auth_token_env",
                        "api_base_url", "public_url", "timeout"})
        sid = r.secret("account_sid", env) or ""
        if not _ACCOUNT_SID.fullmatch(sid):
            raise r.error("account_sid", "must be a Twilio Account SID: AC and 32 hex digits")
        base = r.get("api_base_url", str, "https://api.twilio.com").rstrip("/")
        check_http_url(r, "api_base_url", base)
        # "" until the loader fills in [server] public_url (bot/config/load.py).
        public = r.get("public_url", str, "")
        if public:
            public = base_url(r, "public_url", public)
        return TwilioConfig(account_sid=sid, auth_token=r.secret("auth_token", env) or "",
                            public_url=public, api_base_url=base,
                            timeout=positive(r, "timeout", r.get("timeout", float, 15.0)))

    def parse_instance(self, r: Reader, section: Any) -> dict[str, Any]:
        return {}

    def finish(self, section: TwilioConfig, instances: Mapping[int, InstanceConfig],
               error: Callable[[int, str, str], Exception]) -> TwilioConfig:
        by_number: dict[str, InstanceConfig] = {}
        for inst in instances.values():
            if inst.provider != "twilio":
                continue
            if inst.number in by_number:
                raise error(inst.id, "number", f"two twilio instances use {inst.number}")
            by_number[inst.number] = inst
        return replace(section, instances_by_number=by_number)
