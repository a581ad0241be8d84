"""The crash suite on PostgreSQL, several processes: `wagate serve --workers 2`
(a supervisor, two HTTP processes on one port, one drainer process) on a
fresh database, under the crash suite's mixed load (reliability/crash.py),
while one process at a time, an HTTP process or the drainer, is SIGKILLed at
random moments and the supervisor starts it again, as in production. The
same counts are judged: each acknowledged item arrives, duplicates counted.

`serve --workers 2` rather than two `wagate serve` and a `wagate worker`:
it is the shape docs/operations/scaling.md offers for one host, its HTTP processes share a
port (a killed one's connections fail, the other keeps answering), and its
restarts are the supervisor's, which are part of what is tested.

The server is WAGATE_TEST_POSTGRES_URL (default the local one); the database
`wagate_crash_<random>` is made for the run and dropped after.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Bench
from bench.scaling import (
    create_database,
    database_url,
    drop_database,
    group_processes,
    server_url,
)
from reliability.common import Row
from reliability.crash import Form, exercise

SUITE = "crash_pg"
# The supervisor gives up on a process that dies 6 times in 60 s: killing the
# three in turn keeps each well below that. Graph answers in a second (a slow
# provider): more than the drainer's 64 calls at once keep up with at 80 sends
# a second, so claimed sends are waiting in the drainer whenever it dies.
FULL = Form(kills=12, uptime=(2.0, 5.0), texts_per_second=150, sends_per_second=80,
            greetings_per_second=10, users=100, drain=60.0, graph_delay=1.0)
SMALL = Form(kills=2, uptime=(2.0, 4.0), texts_per_second=150, sends_per_second=80,
             greetings_per_second=10, users=20, drain=30.0, graph_delay=1.0)
RESTARTED_WITHIN = 20.0  # seconds for the supervisor to have a killed process running again


@dataclass
class KillOneProcess:
    """SIGKILL one process of the group, in turn the first HTTP process, the
    drainer, the second HTTP process; then wait for the supervisor to have
    started its successor."""

    turn: int = 0

    def __call__(self, bench: Bench) -> str:
        supervisor = bench.procs["wagate"]
        if supervisor.poll() is not None:
            raise RuntimeError(f"the supervisor exited with {supervisor.returncode}")
        role, index = (("http", 0), ("drainer", 0), ("http", 1))[self.turn % 3]
        self.turn += 1
        live = group_processes(supervisor.pid)
        victim = sorted(pid for pid, r in live.items() if r == role)[index]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + RESTARTED_WITHIN
        while sum(1 for pid, r in group_processes(supervisor.pid).items()
                  if r == role and pid != victim) < sum(1 for r in live.values() if r == role):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {role} process restarted within {RESTARTED_WITHIN:g} s")
            time.sleep(0.05)
        return f"{role} process"


async def run(small: bool, workdir: Path, server: str | None = None) -> list[Row]:
    """`server`: the PostgreSQL server's url (default WAGATE_TEST_POSTGRES_URL, else
    the local one); the suite's database is made on it and dropped after."""
    server = server or server_url()
    name = await create_database(server, "wagate_crash")
    try:
        bench = Bench(tmp=workdir, quick=small, storage_url=database_url(server, name),
                      workers=2)
        return await exercise(bench, SUITE, SMALL if small else FULL, KillOneProcess())
    finally:
        await drop_database(server, name)


if __name__ == "__main__":
    from reliability import crash

    crash.main(SUITE, run)
