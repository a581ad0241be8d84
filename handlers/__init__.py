"""What happens to each inbound message. Order of routers = priority."""

from __future__ import annotations

from bot.dispatch import Dispatcher, Router


def routers() -> list[Router]:
    # Imported here so that building a dispatcher is explicit and cheap to test.
    from handlers import forward, optout, registration, unregistered

    return [forward.router, optout.router, registration.router, unregistered.router]


def build_dispatcher() -> Dispatcher:
    return Dispatcher(routers())
