"""`make reliability`: run the suites against the real service, print one table.

    python -m reliability [--small] [suite ...]

A suite is a module: `crash` is `reliability/crash.py`; a dotted name
(`package.module`) is imported as given, so a suite can live outside this
folder. Each runs in its own temporary work dir (kept, and named, when a row
is not met) within a time limit. The exit status is 1 when any row with a
target is not met, a suite is missing, or a suite failed to run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from reliability.common import Row, table

SUITES = ("crash", "crash_pg", "crash_nats", "crash_managed", "forgery", "fuzz", "ssrf",
          "guessing", "logforge")
# Bounds on one suite's run, whatever it does: the full form of all eight fits
# in ten minutes when each takes what it should; these only stop a hang.
TIME_LIMIT = {False: 420.0, True: 120.0}


def module_name(suite: str) -> str:
    return suite if "." in suite else f"reliability.{suite}"


async def run_suite(suite: str, small: bool, workdir: Path) -> list[Row]:
    """The suite's rows, or one row that is not met saying why there are none."""
    name = module_name(suite)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise  # the suite exists but imports something missing: a real failure
        where = f"reliability/{suite}.py" if name.startswith("reliability.") else name
        return [Row(suite=suite, measure="suite module", figure=f"{where} does not exist",
                    target="present", met=False)]
    limit = TIME_LIMIT[small]
    try:
        return list(await asyncio.wait_for(module.run(small, workdir), limit))
    except TimeoutError:
        return [Row(suite=suite, measure="suite run", figure=f"no result within {limit:.0f} s",
                    target="finishes", met=False)]


async def main(suites: list[str], small: bool) -> list[Row]:
    rows: list[Row] = []
    for suite in suites:
        workdir = Path(tempfile.mkdtemp(prefix=f"wagate-reliability-{suite}-"))
        started = time.perf_counter()
        print(f"{suite}: running ({'small' if small else 'full'} form) in {workdir}",
              flush=True)
        try:
            found = await run_suite(suite, small, workdir)
        except Exception as exc:  # a suite that crashes is a result, not the end of the run
            traceback.print_exc()
            found = [Row(suite=suite, measure="suite run",
                         figure=f"failed: {type(exc).__name__}: {str(exc)[:200]}",
                         target="runs", met=False)]
        rows += found
        failed = any(r.target and not r.met for r in found)
        print(f"{suite}: done in {time.perf_counter() - started:.0f} s"
              + (f", rows not met; work dir kept: {workdir}" if failed else ""), flush=True)
        if not failed:
            shutil.rmtree(workdir, ignore_errors=True)
    return rows


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true",
                        help="the small form (what `make test` runs)")
    parser.add_argument("suites", nargs="*", metavar="suite",
                        help=f"suites to run (default: {' '.join(SUITES)})")
    args = parser.parse_args(argv)
    rows = asyncio.run(main(args.suites or list(SUITES), args.small))
    print()
    print(table(rows))
    return 1 if any(r.target and not r.met for r in rows) else 0


if __name__ == "__main__":
    sys.exit(cli())
