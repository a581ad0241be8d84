"""Where a webhook goes, by its URL's scheme: one module per kind of
destination, each listed once here. A module has `CLIENT` (the package it
needs, None for none), `check(url)` (why a URL of its scheme can never be
delivered to, judged at config load) and `create(session, allowed)` (its
`Destination`). Its client is imported only when a webhook names it, so a
config without brokers needs none installed.

Kafka would be one more module (its client's producer with `acks=all` and an
idempotent producer keyed by `webhook-id`); it is not shipped, as no Kafka
runs where this project is tested.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from types import ModuleType

from yarl import URL

from bot.forwarding.safety import Network, check_url, host_refusal

REGISTRY: dict[str, str] = {
    "http": "bot.forwarding.destinations.http",
    "https": "bot.forwarding.destinations.http",
    "nats": "bot.forwarding.destinations.nats",
    "amqp": "bot.forwarding.destinations.amqp",
    "redis": "bot.forwarding.destinations.redis",
}
BROKERS_EXTRA = "pip install 'wagate[brokers]'"


def module_for(url: str) -> ModuleType:
    """The destination module of `url`'s scheme (the URL was checked at load)."""
    return importlib.import_module(REGISTRY[url.partition(":")[0].lower()])


def check_destination(url: str, allowed: Sequence[Network]) -> str | None:
    """Why `url` can never receive webhooks, or None: an unknown scheme, a
    broker whose client is not installed, a host the address rules refuse,
    or a URL its module cannot use. The message starts with the URL."""
    return _check(url, tuple(allowed))


@functools.lru_cache(maxsize=4096)
def _check(url: str, allowed: tuple[Network, ...]) -> str | None:
    scheme = url.partition(":")[0].lower()
    if scheme in ("http", "https") or scheme not in REGISTRY:
        why = check_url(url, allowed)
        if why is not None and scheme not in REGISTRY:
            return f"{url!r} is not an http(s), nats, amqp or redis URL"
        return why
    module = importlib.import_module(REGISTRY[scheme])
    if module.CLIENT is not None and not _installed(module.CLIENT):
        return (f"{url!r} needs the {module.CLIENT!r} client, which is not installed: "
                f"{BROKERS_EXTRA}")
    try:
        parsed = URL(url)
        host = parsed.raw_host
    except ValueError as exc:
        return f"{url!r} is not a valid URL: {exc}"
    if not host:
        return f"{url!r} has no host"
    why = host_refusal(host, allowed) or module.check(parsed)
    return None if why is None else f"{url!r} is refused: {why}"


def _installed(client: str) -> bool:
    try:
        importlib.import_module(client)
    except ImportError:
        return False
    return True


def without_password(url: str) -> tuple[str, str | None]:
    """A broker URL without the password of its userinfo (what logs, the API
    and the pages may show), and that password."""
    parsed = URL(url)
    if parsed.password is None:
        return url, None
    return str(parsed.with_password(None)), parsed.password
