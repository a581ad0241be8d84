"""The crash suite on PostgreSQL, several processes: `wagate serve --workers 2`
(a supervisor, two processes on one port, each answering and draining) on a
fresh database, under the crash suite's mixed load (reliability/crash.py),
while one process at a time, the first or the second, is SIGKILLed at
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
# The supervisor gives up on a process that dies 6 times in 60 s: the two
# killed in turn, 6 to 9 s apart, each dies at most 4 times in 60 s. Graph
# answers in a second (a slow provider): more than a process's 64 calls at
# once keep up with at 80 sends a second, so claimed sends are waiting in
# the process whenever it dies.
FULL = Form(kills=10, uptime=(6.0, 9.0), texts_per_second=150, sends_per_second=80,
            greetings_per_second=10, users=100, drain=60.0, graph_delay=1.0)
SMALL = Form(kills=2, uptime=(2.0, 4.0), texts_per_second=150, sends_per_second=80,
             greetings_per_second=10, users=20, drain=30.0, graph_delay=1.0)
RESTARTED_WITHIN = 20.0  # seconds for the supervisor to have a killed process running again


@dataclass
class KillOneProcess:
    """SIGKILL the group's oldest process (the lowest pid: each kill's successor
    is the youngest, so the two are killed in turn); then wait for the
    supervisor to have started its successor."""

    def __call__(self, bench: Bench) -> str:
        supervisor = bench.procs["wagate"]
        if supervisor.poll() is not None:
            raise RuntimeError(f"the supervisor exited with {supervisor.returncode}")
        live = group_processes(supervisor.pid)
        victim = min(live)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + RESTARTED_WITHIN
        while len(set(group_processes(supervisor.pid)) - {victim}) < len(live):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no process restarted within {RESTARTED_WITHIN:g} s")
            time.sleep(0.05)
        return "process"


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
