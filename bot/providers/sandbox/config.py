"""The optional `[sandbox]` section: the statuses the sandbox reports on its
own after it takes a message, as a real provider would."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.config.reader import Reader, positive
from bot.config.types import InstanceConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxConfig:
    # Seconds after the send; None: the sandbox never reports that status itself.
    delivered_after: float | None = None
    read_after: float | None = None


class SandboxConfigPart:
    section = "sandbox"
    section_required = False
    instance_keys: frozenset[str] = frozenset()

    def parse_section(self, r: Reader, env: Mapping[str, str]) -> SandboxConfig:
        r.unknown_keys({"delivered_after", "read_after"})
        delivered = r.get("delivered_after", float, None)
        read = r.get("read_after", float, None)
        if delivered is not None:
            positive(r, "delivered_after", delivered, allow_zero=True)
        if read is not None:
            positive(r, "read_after", read, allow_zero=True)
            if delivered is not None and read < delivered:
                raise r.error("read_after", "must not be less than delivered_after "
                              "(a message is read after it is delivered)")
        return SandboxConfig(delivered_after=delivered, read_after=read)

    def parse_instance(self, r: Reader, section: Any) -> dict[str, Any]:
        return {}

    def finish(self, section: SandboxConfig, instances: Mapping[int, InstanceConfig],
               error: Callable[[int, str, str], Exception]) -> SandboxConfig:
        return section
