"""Who is asking: the client's address, as logs and the login throttle see it."""

from __future__ import annotations

from aiohttp import web


def client_address(request: web.Request) -> str:
    """The address of the peer that sent the request ("unknown" when the
    transport does not say, as on a Unix socket)."""
    return request.remote or "unknown"
