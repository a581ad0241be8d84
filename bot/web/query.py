"""Query-string parameters, read the same careful way by every route."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from bot.web.catalog import Error
from bot.web.errors import fail


def query_int(request: web.Request, name: str) -> int | None:
    """An integer parameter, or None when absent; 400 when not an integer SQLite can hold."""
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        fail(Error.INVALID_QUERY, f"query parameter {name} must be an integer")
    if not -2**63 <= value < 2**63:  # what SQLite can compare against
        fail(Error.INVALID_QUERY, f"query parameter {name} is out of range")
    return value


def query_limit(request: web.Request, default: int = 100) -> int:
    """`limit`, clamped to 1..1000."""
    return min(max(query_int(request, "limit") or default, 1), 1000)


def query_choice(request: web.Request, error: Error, allowed: Sequence[str]) -> str | None:
    """One of `allowed`, or None when absent; `error` naming the choices otherwise.
    The parameter is the one the error names: `invalid_status` reads `status`."""
    name = error.slug.removeprefix("invalid_")
    value = request.query.get(name) or None
    if value is not None and value not in allowed:
        choices = ", ".join(allowed[:-1]) + " or " + allowed[-1] if len(allowed) > 1 \
            else allowed[0]
        fail(error, f"{name} must be {choices}")
    return value


QUERY_ERRORS = frozenset({Error.INVALID_QUERY})  # query_int, query_limit
