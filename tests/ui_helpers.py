"""Logging in to the dashboard and the portal as a browser does: fetch the
login form, send it back with its CSRF token; pages' forms carry theirs."""

from __future__ import annotations

import re

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_TOKEN

ACME_LOGIN = {"client_id": "dev@acme.example", "secret": "acme-api-secret"}
BETA_LOGIN = {"client_id": "dev@beta.example", "secret": "beta-api-secret"}
ACME_API = {"X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "acme-api-secret"}
BETA_API = {"X-WM-CLIENT-ID": "dev@beta.example", "X-WM-CLIENT-SECRET": "beta-api-secret"}

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def login(client: TestClient, prefix: str = "/ui/",
                fields: dict[str, str] | None = None) -> ClientResponse:
    """Log in (the session cookie lands in the client's jar); the answer, unfollowed."""
    page = await client.get(f"{prefix}login")
    assert page.status == 200
    form = {"csrf": csrf_of(await page.text()), "next": prefix,
            **(fields if fields is not None else {"token": ADMIN_TOKEN})}
    return await client.post(f"{prefix}login", data=form, allow_redirects=False)


async def page_csrf(client: TestClient, path: str) -> str:
    """The CSRF token of the forms on a page (the session's)."""
    resp = await client.get(path)
    assert resp.status == 200, path
    return csrf_of(await resp.text())
