"""Downloading a user's file from the provider: its size bounded, its address
judged as a webhook's is (bot/forwarding/safety.py) except on the provider's
own configured base URL, its credentials sent to that base URL's origin only.

Each provider's fetch (bot/providers/<name>/media.py) names the URL and the
credentials; `MediaClient.get` does the rest. A failure is a `FetchFailed`
saying whether trying again later may help.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp
from yarl import URL

from bot.forwarding.safety import Network, RefusedAddress, check_url
from bot.store.models import MediaJob

MAX_REDIRECTS = 5
CHUNK = 64 * 1024


class FetchFailed(Exception):
    """Why a file could not be had; `retry` when a later attempt may succeed."""

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True, slots=True, kw_only=True)
class Downloaded:
    content: bytes
    mime_type: str | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = URL(url)
    return parsed.scheme, (parsed.host or "").lower(), parsed.explicit_port or parsed.port


class MediaClient:
    """GETs for one job: `trusted` is the provider's configured base URL, reached
    with the plain session; any other address with the guarded one (its resolver
    refuses private addresses) after `check_url`."""

    def __init__(self, *, plain: aiohttp.ClientSession, guarded: aiohttp.ClientSession,
                 trusted: str, limit: int, timeout: float,
                 allowed: Sequence[Network]) -> None:
        self._plain = plain
        self._guarded = guarded
        self._trusted = _origin(trusted)
        self.limit = limit
        self._timeout = timeout
        self._allowed = allowed

    async def get(self, url: str, headers: Mapping[str, str] | None = None, *,
                  send_credentials_to: str | None = None) -> Downloaded:
        """The file at `url`, following redirects. `headers` (credentials) go to
        `url`'s origin, and to `send_credentials_to`'s when named; never elsewhere."""
        allowed_origins = {_origin(url)} | (
            {_origin(send_credentials_to)} if send_credentials_to else set())
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                origin = _origin(url)
            except ValueError as exc:
                raise FetchFailed(f"{url[:200]!r} is not a valid URL: {exc}") from None
            trusted = origin == self._trusted
            if not trusted and (why := check_url(url, self._allowed)):
                raise FetchFailed(f"refused: {why}")
            session = self._plain if trusted else self._guarded
            sent = dict(headers or {}) if origin in allowed_origins else {}
            try:
                async with session.get(url, headers=sent, allow_redirects=False,
                                       timeout=timeout) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("Location")
                        if not location:
                            raise FetchFailed(f"HTTP {resp.status} without a Location")
                        url = urljoin(url, location)
                        continue
                    if resp.status != 200:
                        raise FetchFailed(f"HTTP {resp.status} from the provider",
                                          retry=resp.status >= 500 or resp.status in (408, 429))
                    return Downloaded(content=await self._read(resp),
                                      mime_type=resp.content_type or None)
            except FetchFailed:
                raise
            except TimeoutError:
                raise FetchFailed(f"timed out after {self._timeout:g}s", retry=True) from None
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, RefusedAddress):
                    raise FetchFailed(f"refused: {exc.os_error}") from None
                raise FetchFailed(f"cannot connect: {exc.os_error or exc}", retry=True) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise FetchFailed(f"{type(exc).__name__}: {exc}" if str(exc)
                                  else type(exc).__name__, retry=True) from None
        raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")

    async def json(self, url: str, headers: Mapping[str, str]) -> Any:
        """A small JSON answer from the provider's own API (Meta's media lookup)."""
        got = await self.get(url, headers)
        try:
            return json.loads(got.content)
        except ValueError:
            raise FetchFailed("the provider's answer is not JSON", retry=True) from None

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        declared = resp.content_length
        if declared is not None and declared > self.limit:
            raise FetchFailed(f"the file is {declared} bytes, over [media] max_bytes "
                              f"({self.limit})")
        parts: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > self.limit:
                raise FetchFailed(f"the file is over [media] max_bytes ({self.limit} bytes)")
            parts.append(chunk)
        return b"".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaFetch:
    """How a provider's files are fetched (bot/providers/<name>/media.py)."""

    # Its configured base URL, from its config section: the one address the
    # safety rules let through.
    base_url: Callable[[Any], str]
    # The job, the section, a client bounded for the job -> the file.
    fetch: Callable[[MediaJob, Any, MediaClient], Awaitable[Downloaded]]
