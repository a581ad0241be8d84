"""A CPU budget per service process, from a cgroup quota.

On two cores shared by the service, its PostgreSQL server, wrk and the peers,
pinning the service with taskset cannot give each process a core of its own:
one process plus the rest already fill both. A CFS quota can give each
process the same fixed share of CPU time, as a (slower) core of its own
would, and leave the rest of the machine to the others. The layout, for a
service of `processes` processes of `cpus` CPU each:

    wagate-bench-<hex>/      processes × cpus: the cores the service would have,
                             and the priority to get them from others' processes
      supervisor/            cpus: the supervisor; its children are born here
      child1/ … childN/      cpus each: one child each, moved there once it runs

With `--workers 2` there are two children, each answering requests and
draining the queues, as on a machine of two cores. A child the
supervisor restarts is born in supervisor/ and `place` moves it into the
leaf its predecessor left empty.

cgroup v1 (the cpu controller's own mount: cpu.cfs_quota_us, cpu.stat's
throttled_time in ns) and v2 (the unified hierarchy: cpu.max, throttled_usec)
are both supported. A leaf of bench/: it imports no other bench module.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
# v1 weighs a group against each of the other processes at the top (1024 each):
# this outweighs some thirty of them (v2's weight is its top, 10000, against 100).
PRIORITY_SHARES = 32_768
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Hierarchy:
    version: int  # 1: the cpu controller's own mount; 2: the unified hierarchy
    root: Path  # where the bench's groups are made

    def quota(self, cpus: float, period_us: int = PERIOD_US) -> dict[str, str]:
        """The files (in the order to write them) that cap a group at `cpus`."""
        quota = max(1000, round(cpus * period_us))  # the kernel refuses less than 1 ms
        if self.version == 1:
            return {"cpu.cfs_period_us": str(period_us), "cpu.cfs_quota_us": str(quota)}
        return {"cpu.max": f"{quota} {period_us}"}

    def priority(self) -> dict[str, str]:
        """The files that make a group win the cores from others' processes: a
        quota caps a group but does not reserve its share on a busy machine."""
        return {"cpu.shares": str(PRIORITY_SHARES)} if self.version == 1 else {
            "cpu.weight": "10000"}

    def throttling(self, cpu_stat: str) -> Throttling:
        """cpu.stat's counters: v1 counts the time throttled in ns, v2 in µs."""
        values = {key: int(value) for key, value in
                  (line.split() for line in cpu_stat.splitlines() if line.strip())}
        seconds = (values.get("throttled_time", 0) / 1e9 if self.version == 1
                   else values.get("throttled_usec", 0) / 1e6)
        return Throttling(values.get("nr_periods", 0), values.get("nr_throttled", 0), seconds)


@dataclass(frozen=True, slots=True)
class Throttling:
    periods: int  # periods in which the group ran
    throttled: int  # periods it ended throttled, its quota spent
    seconds: float  # time its processes waited for the next period

    def since(self, before: Throttling) -> Throttling:
        return Throttling(self.periods - before.periods, self.throttled - before.throttled,
                          self.seconds - before.seconds)

    @property
    def share(self) -> float:
        return self.throttled / self.periods if self.periods else 0.0


def find_hierarchy(root: Path = CGROUP_ROOT) -> Hierarchy | str:
    """Where CPU quotas are set under `root` (a cgroup mount point), or why not."""
    for unified in (root, root / "unified"):  # v2 alone, or beside v1 (hybrid)
        controllers = unified / "cgroup.controllers"
        if controllers.is_file() and "cpu" in controllers.read_text().split():
            return Hierarchy(2, unified)
    for name in ("cpu", "cpu,cpuacct"):
        if (root / name / "cpu.cfs_quota_us").is_file():
            return Hierarchy(1, root / name)
    return f"no cgroup cpu controller under {root} (neither v2's cpu.max nor v1's cpu.cfs_quota_us)"


def usable_hierarchy(root: Path = CGROUP_ROOT) -> Hierarchy | str:
    """`find_hierarchy`, once a group was made, capped and removed there."""
    found = find_hierarchy(root)
    if isinstance(found, str):
        return found
    try:
        with ServiceQuota(found, 0.5, 1, 0):
            pass
    except OSError as exc:
        return f"cgroup v{found.version} at {found.root} is not writable here ({exc})"
    return found


class ServiceQuota:
    """The groups of one service run (see the module's docstring); removed on exit,
    whatever the run did."""

    def __init__(self, hierarchy: Hierarchy, cpus: float, processes: int,
                 children: int) -> None:
        self.hierarchy, self.cpus, self.processes = hierarchy, cpus, processes
        self.top = hierarchy.root / f"wagate-bench-{secrets.token_hex(4)}"
        self.supervisor = self.top / "supervisor"
        self.leaves = [self.top / f"child{i + 1}" for i in range(children)]
        self.moves = 0  # children moved into a leaf: more than `children` means restarts
        self.lost: set[int] = set()  # children that found no empty leaf

    def __enter__(self) -> ServiceQuota:
        try:
            self._make(self.top, self.cpus * self.processes)
            for name, value in self.hierarchy.priority().items():
                (self.top / name).write_text(value)
            for leaf in (self.supervisor, *self.leaves):
                self._make(leaf, self.cpus)
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()

    def _make(self, path: Path, cpus: float) -> None:
        if self.hierarchy.version == 2:  # v2 hands the controller down explicitly
            (path.parent / "cgroup.subtree_control").write_text("+cpu")
        path.mkdir()
        for name, value in self.hierarchy.quota(cpus).items():
            (path / name).write_text(value)

    def groups(self) -> dict[str, Path]:
        return {"service": self.top, "supervisor": self.supervisor,
                **{leaf.name: leaf for leaf in self.leaves}}

    def throttling(self) -> dict[str, Throttling]:
        return {name: self.hierarchy.throttling((path / "cpu.stat").read_text())
                for name, path in self.groups().items()}

    def place(self, children: Iterable[int]) -> None:
        """Move each child not yet in a leaf of its own into an empty leaf."""
        members = {leaf: pids(leaf) for leaf in self.leaves}
        placed = set().union(*members.values())
        for pid in children:
            if pid in placed:
                continue
            empty = next((leaf for leaf, inside in members.items() if not inside), None)
            if empty is None:
                self.lost.add(pid)
                continue
            try:
                (empty / "cgroup.procs").write_text(str(pid))
            except ProcessLookupError:  # exited meanwhile
                continue
            members[empty] = {pid}
            self.moves += 1

    def settled(self, children: Iterable[int]) -> bool:
        """Place the children: whether each leaf now holds one."""
        self.place(children)
        return all(pids(leaf) for leaf in self.leaves)

    @contextlib.contextmanager
    def kept_placed(self, children: Callable[[], Iterable[int]]) -> Iterator[None]:
        """Place the children every 0.2 s meanwhile: a restarted one is born in
        supervisor/, whose quota it would otherwise share."""
        done = threading.Event()

        def keep() -> None:
            while not done.wait(0.2):
                with contextlib.suppress(OSError):  # a write refused: try again next time
                    self.place(children())

        keeper = threading.Thread(target=keep, daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def remove(self) -> None:
        """Remove the groups, leaves first; a process still inside (the service
        should be stopped by now) goes back to the hierarchy's root first."""
        failed = []
        for path in [*self.leaves, self.supervisor, self.top]:
            if not path.exists():
                continue
            for attempt in range(50):  # exiting processes leave within moments
                try:
                    for pid in pids(path):
                        with contextlib.suppress(ProcessLookupError):
                            (self.hierarchy.root / "cgroup.procs").write_text(str(pid))
                    path.rmdir()
                    break
                except OSError as exc:
                    if attempt == 49:
                        failed.append(f"{path}: {exc}")
                    time.sleep(0.1)
        if failed:
            print(f"  WARNING: cgroups left behind, remove them by hand: {'; '.join(failed)}",
                  flush=True)


def pids(group: Path) -> set[int]:
    return {int(line) for line in (group / "cgroup.procs").read_text().split()}


def idle_seconds() -> float:
    """Seconds all the machine's cores spent idle (or waiting for I/O) so far."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / TICKS


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
