"""HTTP(S) endpoints: a POST over the deliverer's keep-alive session, whose
resolver refuses non-public addresses. 2xx is delivered; `Retry-After` is
honoured; redirects are not followed."""

from __future__ import annotations

import email.utils
import math
import time

import aiohttp
from yarl import URL

from bot.config import WebhookConfig
from bot.forwarding.destinations.base import AllowedNetworks, Destination, Message, Outcome
from bot.forwarding.safety import RefusedAddress

CLIENT = None  # aiohttp, always installed
MAX_RESPONSE_BYTES = 4096  # of each response body, kept in the attempt log
MAX_RETRY_AFTER = 86400.0  # a Retry-After further out than this is capped
USER_AGENT = "wagate-webhooks/1"


def check(url: URL) -> str | None:
    return None  # safety.check_url has judged it


def create(session: aiohttp.ClientSession, allowed: AllowedNetworks) -> HttpDestination:
    return HttpDestination(session)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


class HttpDestination(Destination):
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session  # the deliverer's: closed by its owner

    async def close(self) -> None:
        pass

    async def send(self, hook: WebhookConfig, message: Message, within: float) -> Outcome:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   **message.headers}
        try:
            async with self.session.post(
                    hook.url, data=message.body, headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=within)) as resp:
                raw = b""
                while len(raw) < MAX_RESPONSE_BYTES:
                    chunk = await resp.content.read(MAX_RESPONSE_BYTES - len(raw))
                    if not chunk:
                        break
                    raw += chunk
                text = raw.decode("utf-8", errors="replace")
                error = None
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}"
                    if 300 <= resp.status < 400:
                        error += " (redirects are not followed)"
                return Outcome(delivered=200 <= resp.status < 300, status=resp.status,
                               body=text, error=error,
                               retry_after=parse_retry_after(resp.headers.get("Retry-After"),
                                                             time.time()))
        except TimeoutError:
            return Outcome(error=f"timed out after {within:g}s")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                return Outcome(error=f"refused: {exc.os_error}", refused=True)
            return Outcome(error=f"cannot connect: {exc.os_error or exc}")
        except aiohttp.InvalidURL as exc:  # aiohttp will never send to it: no retry
            return Outcome(error=f"refused: {type(exc).__name__}: {exc}", refused=True)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}" if str(exc)
                           else type(exc).__name__)
