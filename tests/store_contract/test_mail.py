"""Mail to subscribers ([email]) on each backend, through a real SMTP server on
loopback (STARTTLS, a certificate made here, a login): the welcome with
credentials that work, reminders 7 and 1 days before the end, a trial's
change of plan; each once across checks, restarts and (PostgreSQL) two
services at once; a refused mail is sent at the next check; nothing at all
without [email]."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import Config, ConfigError
from bot.config.load import parse_config
from bot.web.keys import clock_key, mail_worker_key
from tests.conftest import ADMIN, ADMIN_TOKEN, base_config, say, wait_for
from tests.mail_helpers import SMTP_USER, MailServer, self_signed
from tests.store_contract.conftest import Backend

AppClient = Callable[..., Awaitable[TestClient]]
DAY = 86400.0
shared_database = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def subscriber(sub_id: str, plan: str, since: dt.date, *, expires: dt.date | None = None,
               email: str | None = None) -> str:
    return f"""
[[subscribers]]
id = "{sub_id}"
client_id = "dev@{sub_id}.example"
secret = "{sub_id}-api-secret"
plan = "{plan}"
since = {since}
instances = [1]
""" + (f"expires = {expires}\n" if expires else "") + (f'email = "{email}"\n' if email else "")


def subscribers(today: dt.date) -> str:
    """acme: ends in 5 days (a 7-day reminder is due); trialco: its trial turned
    forever_green today; calm: no end; silent: ends soon but has no email."""
    month_ago, days = today - dt.timedelta(days=30), dt.timedelta
    return (subscriber("acme", "enterprise", month_ago, expires=today + days(5),
                       email="ops@acme.example")
            + subscriber("trialco", "trial", today - days(14), email="boss@trialco.example")
            + subscriber("calm", "enterprise", month_ago, email="calm@calm.example")
            + subscriber("silent", "enterprise", month_ago, expires=today + days(2)))


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@pytest.fixture
def mail_config(make_config: Callable[..., Config], mail_server: MailServer
                ) -> Callable[..., Config]:
    def make(email: str | None = None) -> Config:
        return make_config((mail_server.toml() if email is None else email)
                           + subscribers(today()))
    return make


async def test_reminders_and_plan_notes_go_once_across_checks_and_restarts(
        aiohttp_client: AppClient, mail_config: Callable[..., Config],
        mail_server: MailServer) -> None:
    config = mail_config()
    client = await aiohttp_client(create_app(config))
    received = await mail_server.wait(2)  # the check at start
    by_to = {r.recipients[0]: r for r in received}
    assert set(by_to) == {"ops@acme.example", "boss@trialco.example"}
    for r in received:
        assert r.tls and r.user == SMTP_USER and r.sender == "gateway@example.com"
        assert r.mail["From"] == "gateway@example.com"
    last_day = today() + dt.timedelta(days=4)
    acme = by_to["ops@acme.example"]
    assert acme.mail["Subject"] == "Your WhatsApp gateway subscription ends in 5 days"
    assert f"works until {last_day} included" in acme.text
    note = by_to["boss@trialco.example"]
    assert note.mail["Subject"] == "Your WhatsApp gateway plan is now forever_green"
    assert f"ended on {today()}" in note.text and "100 messages a day" in note.text

    worker = client.app[mail_worker_key]
    assert await worker.check() == 0  # nothing new today
    client.app[clock_key].shift(4 * DAY)  # acme's last day: the 1-day reminder
    assert await worker.check() == 1
    assert await worker.check() == 0
    last = mail_server.received[-1]
    assert last.recipients == ["ops@acme.example"]
    assert last.mail["Subject"] == "Your WhatsApp gateway subscription ends in 1 day"
    assert len(mail_server.received) == 3
    await client.close()

    # A restart, on the same store, a day before and on the last day: nothing again.
    again = await aiohttp_client(create_app(config))
    assert await again.app[mail_worker_key].check() == 0
    again.app[clock_key].shift(4 * DAY)
    assert await again.app[mail_worker_key].check() == 0
    await asyncio.sleep(0.3)
    assert len(mail_server.received) == 3


async def test_the_welcome_holds_credentials_and_a_first_send_that_works(
        aiohttp_client: AppClient, mail_config: Callable[..., Config],
        mail_server: MailServer) -> None:
    config = mail_config()
    client = await aiohttp_client(create_app(config))
    await mail_server.wait(2)
    worker = client.app[mail_worker_key]
    task = worker.welcome(config.subscribers["acme"], "acme-api-secret")
    assert task is not None and await task is True
    welcome = mail_server.received[-1]
    assert welcome.recipients == ["ops@acme.example"]
    assert welcome.mail["Subject"] == "Your WhatsApp gateway credentials"
    text = welcome.text
    assert "CLIENT_ID: dev@acme.example" in text and "SECRET:    acme-api-secret" in text
    assert "Your plan: enterprise (1000 messages a day" in text
    # The curl in the mail, as the subscriber would paste it, sends.
    path = re.search(r"curl -s http://127\.0\.0\.1:0(\S+)", text)
    headers = dict(re.findall(r"-H '([^:]+): ([^']+)'", text))
    body = re.search(r"-d '(.+)'", text)
    assert path and body and set(headers) == {"X-WM-CLIENT-ID", "X-WM-CLIENT-SECRET"}
    await say(client, "Hola", sender="+34600000001")
    resp = await client.post(path.group(1), headers=headers, data=body.group(1))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "queued"
    # Once per subscriber's credentials.
    again = worker.welcome(config.subscribers["acme"], "acme-api-secret")
    assert again is not None and await again is False
    assert len(mail_server.received) == 3


async def test_a_refused_mail_goes_at_the_next_check(
        aiohttp_client: AppClient, mail_config: Callable[..., Config],
        mail_server: MailServer) -> None:
    mail_server.refuse_next = 1
    client = await aiohttp_client(create_app(mail_config()))
    await mail_server.wait(1)
    await asyncio.sleep(0.3)
    assert len(mail_server.received) == 1  # the other was answered 451
    assert await client.app[mail_worker_key].check() == 1
    assert sorted(r.recipients[0] for r in mail_server.received) == [
        "boss@trialco.example", "ops@acme.example"]


async def test_an_untrusted_certificate_sends_nothing(
        aiohttp_client: AppClient, mail_config: Callable[..., Config],
        mail_server: MailServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(self_signed(other)[0]))
    client = await aiohttp_client(create_app(mail_config()))
    assert await client.app[mail_worker_key].check() == 0
    await asyncio.sleep(0.3)
    assert mail_server.received == []


async def test_without_email_nothing_is_sent(
        aiohttp_client: AppClient, mail_config: Callable[..., Config],
        mail_server: MailServer) -> None:
    config = mail_config(email="")
    assert config.email is None
    client = await aiohttp_client(create_app(config))
    worker = client.app[mail_worker_key]
    assert await worker.check() == 0
    assert worker.welcome(config.subscribers["acme"], "acme-api-secret") is None
    await asyncio.sleep(0.3)
    assert mail_server.received == []


@shared_database
async def test_two_services_on_one_database_send_each_mail_once(
        aiohttp_client: AppClient, mail_config: Callable[..., Config],
        mail_server: MailServer, backend: Backend) -> None:
    config = mail_config()
    first, second = await asyncio.gather(aiohttp_client(create_app(config)),
                                         aiohttp_client(create_app(config)))
    await mail_server.wait(2)
    workers = [first.app[mail_worker_key], second.app[mail_worker_key]]
    assert sum(await asyncio.gather(*(w.check() for w in workers))) == 0
    for client in (first, second):
        client.app[clock_key].shift(4 * DAY)
    assert sum(await asyncio.gather(*(w.check() for w in workers * 3))) == 1
    await asyncio.sleep(0.3)
    assert sorted(r.mail["Subject"] for r in mail_server.received) == [
        "Your WhatsApp gateway plan is now forever_green",
        "Your WhatsApp gateway subscription ends in 1 day",
        "Your WhatsApp gateway subscription ends in 5 days"]


@pytest.mark.parametrize(("email", "subscriber", "message"), [
    ('[email]\nhost = "smtp.example"\n', "", "email.from: is required"),
    ('[email]\nhost = "smtp.example"\nfrom = "x@example.com"\npassword = "p"\n', "",
     "needs a `username`"),
    ('[email]\nhost = "smtp.example"\nfrom = "gateway"\n', "", "is not an email address"),
    ("", 'email = "ops@acme.example\\nBcc: all@example.com"', "is not an email address"),
])
def test_email_settings_are_checked_at_load(tmp_path: Path, email: str, subscriber: str,
                                            message: str) -> None:
    text = base_config(tmp_path / "w.db", extra=email + f"""
[[subscribers]]
id = "acme"
client_id = "dev@acme.example"
secret = "s"
{subscriber}
""")
    assert ADMIN_TOKEN in text
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text, env={})


async def test_a_subscriber_created_through_the_api_gets_its_welcome(
        aiohttp_client: AppClient, mail_config: Callable[..., Config],
        mail_server: MailServer) -> None:
    client = await aiohttp_client(create_app(mail_config()))
    await mail_server.wait(2)
    resp = await client.post("/admin/subscribers", headers=ADMIN, json={
        "id": "zeta", "plan": "enterprise", "instances": [1], "email": "dev@zeta.example"})
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    [welcome] = await wait_for(lambda: mail_server.to("dev@zeta.example"))
    assert f"CLIENT_ID: {created['client_id']}" in welcome.text
    assert f"SECRET:    {created['secret']}" in welcome.text
    # One without an email gets none; nor does anyone else.
    resp = await client.post("/admin/subscribers", headers=ADMIN,
                             json={"id": "eta", "plan": "trial", "instances": [1]})
    assert resp.status == 201
    await asyncio.sleep(0.3)
    assert len(mail_server.received) == 3
