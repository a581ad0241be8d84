"""The `[waha]` section and the `session` of each waha instance."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.config.reader import Reader, check_http_url, positive
from bot.config.types import InstanceConfig

# Session names go into URL paths: keep them to what WAHA itself allows.
_SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WahaConfig:
    base_url: str
    api_key: str
    hmac_key: str
    timeout: float = 15.0
    # Compiled at load: which instance a webhook's `session` means.
    instances_by_session: Mapping[str, InstanceConfig] = field(default_factory=dict)


class WahaConfigPart:
    section = "waha"
    section_required = True
    instance_keys = frozenset({"session"})

    def parse_section(self, r: Reader, env: Mapping[str, str]) -> WahaConfig:
        r.unknown_keys({"base_url", "api_key", "api_key_env", "hmac_key", "hmac_key_env",
                        "timeout"})
        base = r.get("base_url", str).rstrip("/")
        check_http_url(r, "base_url", base)
        # Without the HMAC key inbound webhooks could not be verified: refuse to start.
        return WahaConfig(base_url=base, api_key=r.secret("api_key", env) or "",
                          hmac_key=r.secret("hmac_key", env) or "",
                          timeout=positive(r, "timeout", r.get("timeout", float, 15.0)))

    def parse_instance(self, r: Reader, section: Any) -> dict[str, Any]:
        session = r.get("session", str, "default")
        if not _SESSION.fullmatch(session):
            raise r.error("session", "must be 1 to 64 letters, digits, '-' or '_' "
                          "(the WAHA session name)")
        return {"session": session}

    def finish(self, section: WahaConfig, instances: Mapping[int, InstanceConfig],
               error: Callable[[int, str, str], Exception]) -> WahaConfig:
        by_session: dict[str, InstanceConfig] = {}
        for inst in instances.values():
            if inst.provider != "waha":
                continue
            session = inst.options["session"]
            if session in by_session:
                raise error(inst.id, "session", f"session {session!r} is already used by "
                            f"instance {by_session[session].id}")
            by_session[session] = inst
        return replace(section, instances_by_session=by_session)
