"""The event loop: uvloop when it is installed (the `fast` extra), else asyncio's.

`WAGATE_LOOP=asyncio` forces the standard loop (e.g. to compare, or to debug).
"""

from __future__ import annotations

import asyncio
import os


def new_event_loop() -> asyncio.AbstractEventLoop:
    if os.environ.get("WAGATE_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()

