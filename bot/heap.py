"""The garbage collector and the long-lived heap.

The config, the locale catalogs, and the phone-number and CLDR data the
service loads at start (or reload) live as long as the process: several
hundred thousand objects. Every full collection walked them all, a 20-40 ms
pause for each request in flight (measured under `make bench`). `gc.freeze()`
moves what is alive once loading is done out of the collector's sight; the
collector still finds cycles among everything made afterwards.
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """Called by `wagate serve` once started."""
    gc.collect()
    gc.freeze()


def refreeze() -> None:
    """After a reload, in a process that froze its heap: let the old config go,
    freeze the new one. One full collection, once per reload."""
    if gc.get_freeze_count():
        gc.unfreeze()
        freeze()
