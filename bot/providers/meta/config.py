"""The `[meta]` section and the `phone_number_id` of each meta instance."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.config.reader import Reader, check_http_url, positive
from bot.config.types import InstanceConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class MetaConfig:
    app_secret: str
    verify_token: str
    access_token: str
    graph_base_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    timeout: float = 15.0
    app_id: str | None = None  # for the resumable upload of a profile picture
    # Compiled at load: which instance a webhook's metadata.phone_number_id means.
    instances_by_phone_number_id: Mapping[str, InstanceConfig] = field(default_factory=dict)


class MetaConfigPart:
    section = "meta"
    section_required = True
    instance_keys = frozenset({"phone_number_id"})

    def parse_section(self, r: Reader, env: Mapping[str, str]) -> MetaConfig:
        r.unknown_keys({"app_secret", "app_secret_env", "verify_token", "verify_token_env",
                        "access_token", "access_token_env", "graph_base_url", "api_version",
                        "timeout", "app_id"})
        base = r.get("graph_base_url", str, "https://graph.facebook.com").rstrip("/")
        check_http_url(r, "graph_base_url", base)
        return MetaConfig(app_secret=r.secret("app_secret", env) or "",
                          verify_token=r.secret("verify_token", env) or "",
                          access_token=r.secret("access_token", env) or "",
                          graph_base_url=base, api_version=r.get("api_version", str, "v21.0"),
                          timeout=positive(r, "timeout", r.get("timeout", float, 15.0)),
                          app_id=r.get("app_id", str, None))

    def parse_instance(self, r: Reader, section: Any) -> dict[str, Any]:
        pnid = r.get("phone_number_id", str, None)
        if not pnid:
            raise r.error("phone_number_id", "is required for provider \"meta\"")
        return {"phone_number_id": pnid}

    def finish(self, section: MetaConfig, instances: Mapping[int, InstanceConfig],
               error: Callable[[int, str, str], Exception]) -> MetaConfig:
        by_pnid: dict[str, InstanceConfig] = {}
        for inst in instances.values():
            pnid = inst.options.get("phone_number_id") if inst.provider == "meta" else None
            if pnid is None:
                continue
            if pnid in by_pnid:
                raise error(inst.id, "phone_number_id", f"duplicate phone_number_id {pnid!r}")
            by_pnid[pnid] = inst
        return replace(section, instances_by_phone_number_id=by_pnid)
