"""A real SMTP server on loopback for the mail tests (aiosmtpd): STARTTLS with a
self-signed certificate made for the test (the service trusts it through
SSL_CERT_FILE, as an operator's private CA would be), AUTH only after
STARTTLS, and every message received kept as parsed email."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import wait_for

SMTP_USER = "gateway"
SMTP_PASSWORD = "smtp-password-0123"


@dataclass
class Received:
    mail: EmailMessage
    sender: str
    recipients: list[str]
    tls: bool  # the session had been upgraded with STARTTLS
    user: str | None  # who logged in

    @property
    def text(self) -> str:
        return str(self.mail.get_content())


@dataclass
class MailServer:
    port: int
    received: list[Received] = field(default_factory=list)
    refuse_next: int = 0  # answer DATA with 451 this many times

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.recipients]

    async def wait(self, count: int, timeout: float = 10.0) -> list[Received]:
        return await wait_for(lambda: len(self.received) >= count and self.received, timeout)

    def toml(self, *, port: int | None = None) -> str:
        return f"""
[email]
host = "127.0.0.1"
port = {self.port if port is None else port}
username = "{SMTP_USER}"
password_env = "WAGATE_TEST_SMTP_PASSWORD"
from = "gateway@example.com"
"""

    # aiosmtpd's handler hooks
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_next:
            self.refuse_next -= 1
            return "451 4.3.0 try again later"
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.received.append(Received(parsed, str(envelope.mail_from),
                                      list(envelope.rcpt_tos), session.ssl is not None, login))
        return "250 OK"


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made now."""
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@contextlib.asynccontextmanager
async def serving(folder: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MailServer]:
    """The server, on a free port of 127.0.0.1, trusted by the service under test
    (the `mail_server` fixture of tests/conftest.py)."""
    cert, key = self_signed(folder)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("WAGATE_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    state = MailServer(port=0)
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(state, hostname="mail.test", tls_context=context, require_starttls=True,
                     authenticator=_authenticate, auth_require_tls=True, auth_required=True),
        "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
