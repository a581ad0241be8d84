"""The interface every kind of webhook destination implements, and what they share.

A destination takes one signed message (the exact body and its Standard
Webhooks headers) and says how the attempt went; the deliverer
(`bot/workers/webhooks.py`) does the rest (claims, retries, the attempt log,
disabling) the same way for all of them.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.config import WebhookConfig
from bot.forwarding.payloads import standard_headers, whatsmate_body
from bot.forwarding.safety import GuardedResolver, Network, RefusedAddress, refusal

AllowedNetworks = Callable[[], Sequence[Network]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How one attempt went. `status` is an HTTP status (None for a broker)."""

    delivered: bool = False
    status: int | None = None
    body: str | None = None  # what the far side answered, kept in the attempt log
    error: str | None = None
    retry_after: float | None = None
    refused: bool = False  # the address may never receive webhooks: no retry


@dataclass(frozen=True, slots=True)
class Message:
    id: str  # the webhook-id: the broker's de-duplication id where it has one
    body: bytes  # the exact bytes that were signed
    headers: dict[str, str] = field(default_factory=dict)  # webhook-id/-timestamp/-signature


def message_for(hook: WebhookConfig, delivery_id: str, payload: str) -> Message:
    """The stored payload as this endpoint gets it, signed (or tokened) now."""
    if hook.format == "whatsmate":
        return Message(delivery_id, whatsmate_body(hook.token or "", payload))
    body, now = payload.encode(), time.time()
    return Message(delivery_id, body,
                   standard_headers(hook.signing_secrets(now), delivery_id, int(now), body))


class Destination(ABC):
    """One kind of destination (HTTP, a broker): one long-lived object per
    deliverer, holding its connections.

    The deliverer hands it up to `batch` messages of one endpoint at once
    (`send_batch`): an HTTP endpoint takes one request at a time, a broker
    takes a batch in one round trip and its acks together."""

    batch = 1

    @abstractmethod
    async def send(self, hook: WebhookConfig, message: Message, within: float) -> Outcome: ...

    async def send_batch(self, hook: WebhookConfig, messages: Sequence[Message],
                         within: float) -> list[Outcome]:
        """One outcome per message, in order (`within` bounds the whole batch)."""
        return [await self.send(hook, message, within) for message in messages]

    @abstractmethod
    async def close(self) -> None: ...


async def public_address(host: str, port: int, allowed: AllowedNetworks) -> str:
    """An address of `host` that webhooks may reach (the rules of
    `bot/forwarding/safety.py`), for a broker client to connect to: the
    address judged is the address used. Raises RefusedAddress."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        results = await GuardedResolver(allowed).resolve(host, port, socket.AF_UNSPEC)
        return str(results[0]["host"])
    why = refusal(ip, allowed())
    if why is not None:
        raise RefusedAddress(f"{host} is {why}; not in [webhooks] allow_private_networks")
    return str(ip)


def failure(exc: BaseException) -> Outcome:
    """A failed attempt from a client's exception, without its arguments' secrets:
    the class and message only (clients do not put passwords in messages)."""
    if isinstance(exc, RefusedAddress):
        return Outcome(error=f"refused: {exc}", refused=True)
    if isinstance(exc, TimeoutError):
        return Outcome(error="timed out")
    text = str(exc)
    return Outcome(error=f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
