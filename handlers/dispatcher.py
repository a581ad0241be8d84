"""The handlers' routers in priority order, and the dispatcher built over them.

Apart from the package's `__init__`, which the handler modules pass through
when they import their shared filters: the list that imports them all lives
here, so no handler module imports it back.
"""

from __future__ import annotations

from bot.dispatch import Dispatcher, Router
from handlers import forward, optout, registration, unregistered
from handlers.filters import answer_locale


def routers() -> list[Router]:
    """Order of routers = priority: the first that handles a message wins."""
    return [forward.router, optout.router, registration.router, unregistered.router]


def build_dispatcher() -> Dispatcher:
    return Dispatcher(routers(), choose_locale=answer_locale)
