"""The send API's clock: wall time that tests can move instead of sleeping.

Quota periods last 24 hours and subscriptions run for days or months; a test
that had to wait for them would never run. Production reads `time.time()`
unchanged (offset 0); a test shifts the clock on the app (`app[clock_key]`)
and the routes pass `now` down to the store and the plan rules.
"""

from __future__ import annotations

import datetime as dt
import time


class Clock:
    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        """Seconds since the epoch, as `time.time()`, shifted by the offset."""
        return time.time() + self.offset

    def today(self) -> dt.date:
        """Today's date in UTC: subscription dates (`since`, `expires`) are UTC days."""
        return dt.datetime.fromtimestamp(self.now(), dt.UTC).date()

    def shift(self, seconds: float) -> None:
        self.offset += seconds
