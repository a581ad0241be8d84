"""Helpers for the send API tests: subscribers in TOML, credentials, media samples."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.web.keys import clock_key, store_key
from tests.conftest import ADMIN

ACME = {"X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "acme-secret"}
BETA = {"X-WM-CLIENT-ID": "dev@beta.example", "X-WM-CLIENT-SECRET": "beta-secret"}

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
GIF = b"GIF89a" + bytes(range(256))
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256)) * 4 + b"%%EOF\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def today(days: int = 0) -> dt.date:
    return dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)


def subscriber(sub_id: str, client_id: str, secret: str, *, plan: str = "enterprise",
               since_days: int = -30, expires_days: int | None = None,
               instances: tuple[int, ...] = (1, 2), hashed: bool = False) -> str:
    """A `[[subscribers]]` table; dates are relative to today (UTC)."""
    secret_line = (f'secret_sha256 = "{hashlib.sha256(secret.encode()).hexdigest()}"'
                   if hashed else f'secret = "{secret}"')
    expires = f"expires = {today(expires_days)}\n" if expires_days is not None else ""
    return (f'\n[[subscribers]]\nid = "{sub_id}"\nclient_id = "{client_id}"\n{secret_line}\n'
            f'plan = "{plan}"\nsince = {today(since_days)}\n{expires}'
            f"instances = [{', '.join(map(str, instances))}]\n")


def plan(name: str, *, messages: int, recipients: int,
         features: tuple[str, ...] = ("text", "image", "document", "url", "group"),
         extra: str = "") -> str:
    listed = ", ".join(f'"{f}"' for f in features)
    return (f"\n[plans.{name}]\nmessages_per_day = {messages}\nmax_recipients = {recipients}\n"
            f"features = [{listed}]\n{extra}")


# acme: enterprise on both numbers; beta: a small plan on the sandbox only,
# its secret stored as SHA-256.
DEFAULT = (plan("small", messages=3, recipients=2)
           + subscriber("acme", "dev@acme.example", "acme-secret")
           + subscriber("beta", "dev@beta.example", "beta-secret", plan="small",
                        instances=(1,), hashed=True))


def path(audience: str, kind: str, instance: int = 1) -> str:
    return f"/v3/whatsapp/{audience}/{kind}/message/{instance}"


async def send(client: TestClient, audience: str, kind: str, body: Any, *,
               instance: int = 1, headers: dict[str, str] | None = None) -> ClientResponse:
    # A stream, not bytes: aiohttp warns about large raw bodies (and warnings fail).
    return await client.post(path(audience, kind, instance),
                             data=io.BytesIO(json.dumps(body).encode()),
                             headers={"Content-Type": "application/json",
                                      **(ACME if headers is None else headers)})


async def usage(client: TestClient, sub: str = "acme") -> tuple[int, int]:
    """(messages counted in the running period, recipients in total)."""
    got = await client.app[store_key].send_usage(sub, 24 * 3600.0,
                                                 client.app[clock_key].now())
    return got.count, got.recipients


async def sent_by(client: TestClient, sub: str = "acme") -> list[dict[str, Any]]:
    """What the sandbox outbox holds from this subscriber (auto-replies left out)."""
    resp = await client.get("/sandbox/outbox", headers=ADMIN, params={"limit": "1000"})
    assert resp.status == 200
    return [m for m in (await resp.json())["messages"] if m["subscriber"] == sub]
