"""The service's mails to subscribers: what they say, which are due, and the
SMTP send.

Three kinds go out (only with an `[email]` section, only to subscribers with
an `email`): the welcome with the credentials, made when a subscriber is
created; a reminder 7 days and another 1 day before the subscription ends;
a note when a plan turns into its `then` plan (a trial becoming
forever_green). Each has a `kind` naming it and the date it is about, so the
store's mail log (`MailLog`) lets it go once across restarts and processes,
and a subscription renewed to a new end date is reminded again.

Sending uses the standard library's smtplib in a thread: a few mails a day
need no asynchronous client. The server's certificate is verified against
the system's CAs (or those `SSL_CERT_FILE` names) before logging in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shlex
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from bot.config import Config, EmailConfig, PlanConfig, SubscriberConfig
from bot.subscribers import subscription_on

SMTP_TIMEOUT = 30.0
REMINDER_DAYS = (7, 1)
# A change of plan is told if it happened this recently (a service that was
# down that day still tells it; one enabling [email] later does not tell old ones).
PLAN_NOTE_DAYS = 3


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str


def first_instance(config: Config, sub: SubscriberConfig) -> int | None:
    """The number a subscriber's first send would use: one it lists, else one it owns."""
    owned = (i.id for i in config.instances.values() if i.owner == sub.id)
    return next(iter(sub.instances), None) or next(owned, None)


def welcome(config: Config, sub: SubscriberConfig, secret: str) -> Mail:
    """The credentials, the plan and a first send, as a subscriber starts."""
    assert sub.email is not None
    plan = config.plans[sub.plan]
    instance = first_instance(config, sub)
    base = config.server.base_url
    ends = f", until {_last_day(sub.expires)}" if sub.expires else ""
    text = f"""Welcome to the WhatsApp gateway at {base}.

Your credentials for the send API:

  CLIENT_ID: {sub.client_id}
  SECRET:    {secret}

Keep the secret safe: it is shown here once and stored only hashed. If it
leaks, issue a new one (POST {base}/v3/account/secrets) and the old one stops.

Your plan: {plan.name} ({plan.messages_per_day} messages a day, {plan.max_recipients} \
recipients{ends}).

Your first message, from a shell (the number must have greeted the gateway first):

  curl -s {base}/v3/whatsapp/single/text/message/{instance or "INSTANCE"} \\
    -H {shlex.quote("X-WM-CLIENT-ID: " + sub.client_id)} \\
    -H {shlex.quote("X-WM-CLIENT-SECRET: " + secret)} \\
    -d '{{"number": "+34600000001", "message": "Hello from {sub.id}"}}'

Your account, usage and deliveries: {base}/portal/ (log in with the same
CLIENT_ID and SECRET). The API: {base}/docs
"""
    return Mail(sub.email, "Your WhatsApp gateway credentials", text)


def _last_day(ends: dt.date) -> str:
    """`expires` is the first day that no longer works: the last one is before it."""
    return (ends - dt.timedelta(days=1)).isoformat()


def due(sub: SubscriberConfig, plans: Mapping[str, PlanConfig], today: dt.date,
        base: str) -> list[tuple[str, Mail]]:
    """The reminders and plan notes due for `sub` on `today`, each with its
    kind (the mail log's key): at most one reminder (the 1-day one once the
    7-day one's day is past) and one plan note."""
    if sub.email is None:
        return []
    now = subscription_on(sub, plans, today)
    mails: list[tuple[str, Mail]] = []
    if now.active and now.ends is not None:
        left = (now.ends - today).days
        days = next((d for d in sorted(REMINDER_DAYS) if left <= d), None)
        if days is not None and left >= 1:
            mails.append((f"expires-{days}:{now.ends.isoformat()}", Mail(
                sub.email, f"Your WhatsApp gateway subscription ends in {left} "
                           f"day{'s' if left != 1 else ''}",
                f"Your subscription {sub.id!r} (plan {now.plan.name}) works until "
                f"{_last_day(now.ends)} included; from {now.ends.isoformat()} its sends "
                f"are refused.\n\nTo go on, ask for a renewal. Your account: "
                f"{base}/portal/\n")))
    if (now.active and now.plan.name != sub.plan
            and 0 <= (today - now.plan_since).days <= PLAN_NOTE_DAYS):
        plan = now.plan
        mails.append((f"plan-{plan.name}:{now.plan_since.isoformat()}", Mail(
            sub.email, f"Your WhatsApp gateway plan is now {plan.name}",
            f"Your {sub.plan} of {sub.id!r} ended on {now.plan_since.isoformat()}, and it "
            f"went on as plan {plan.name}: {plan.messages_per_day} messages a day, "
            f"{plan.max_recipients} recipients"
            f"{', webhooks for what users write' if plan.inbound_webhooks else ''}.\n\n"
            f"Your account: {base}/portal/\n")))
    return mails


async def send(settings: EmailConfig, mail: Mail) -> None:
    """Hand `mail` to the SMTP server; raises OSError or smtplib.SMTPException."""
    await asyncio.to_thread(_send, settings, mail)


def _send(settings: EmailConfig, mail: Mail) -> None:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2])
    message.set_content(mail.text)
    with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.username is not None:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(message)
