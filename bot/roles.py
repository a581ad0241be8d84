"""What one process of `wagate serve` runs, and the group it belongs to: plain
values the supervisor (bot/processes.py) hands down and the app reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """The processes of one `wagate serve --workers N`, as each child knows them."""

    http_processes: int
    metrics_dir: str  # PROMETHEUS_MULTIPROC_DIR, shared by the group
    supervisor_pid: int
    # Which of the group's processes this is (1 to http_processes, kept by a
    # restarted successor): the first records what the group does once, such
    # as a reload's audit entry.
    index: int = 1
    # The worker id this process's claims carry, given by the supervisor to a
    # child and to each of its successors: a process restarted after a crash
    # releases its own claims at start, so it frees at once those its killed
    # predecessor left, instead of leaving them until their lease ends.
    worker_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Roles:
    """What one process runs: the HTTP side, the queue drainers (outbound sender
    and webhook deliverer), or both (`wagate serve` alone, the default)."""

    http: bool = True
    drainers: bool = True
    group: Group | None = None

    @property
    def audits_reloads(self) -> bool:
        """Whether this process records a reload in the audit log: each process
        of a group reloads, and the entry is the group's, written once."""
        return self.group is None or self.group.index == 1

    @property
    def names(self) -> list[str]:
        return [name for name, on in (("http", self.http), ("drainers", self.drainers)) if on]
