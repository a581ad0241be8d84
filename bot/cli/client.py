"""The CLI's HTTP client of the running service (admin API, sandbox, send API)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bot.cli.common import CommandError

if TYPE_CHECKING:
    from bot.config import Config


class ServiceUnreachable(CommandError):
    """No answer from the service at `url` (not running, wrong address)."""

    def __init__(self, url: str, exc: OSError) -> None:
        super().__init__(f"cannot reach wagate at {url}: {exc}; is it running? Start it "
                         "with `wagate serve` (or check --url / [server] in the config)")
        self.url = url


class ApiRefused(CommandError):
    """The service answered with an error status."""

    def __init__(self, status: int, message: Any) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def base_url(config: Config) -> str:
    """The service's URL from [server]: a wildcard address is reached on loopback."""
    host = config.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    return f"http://{host}:{config.server.port}"


def call(config: Config, method: str, path: str, body: Any = None,
         params: dict[str, Any] | None = None, url: str | None = None,
         headers: dict[str, str] | None = None) -> Any:
    """One request to the running service (the admin token unless `headers`
    say otherwise): the answer's JSON. Raises ApiRefused (its status and
    error_message) or ServiceUnreachable."""
    import aiohttp

    if headers is None:
        headers = {"Authorization": f"Bearer {config.admin_token}"}
    base = url or base_url(config)

    async def go() -> Any:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with aiohttp.ClientSession() as session, session.request(
                method, base + path, json=body, params=query, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise ApiRefused(resp.status, data.get("error_message")
                                 if isinstance(data, dict) else data)
            return data

    try:
        return asyncio.run(go())
    except OSError as exc:
        raise ServiceUnreachable(base, exc) from None
