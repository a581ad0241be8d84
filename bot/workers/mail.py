"""The mail worker: sends the service's mails to subscribers (bot/services/mail.py).

At start and then every CHECK_EVERY it sends the reminders and plan notes due
today; `welcome` sends a new subscriber's credentials at once. Each mail is
claimed in the store's mail log before it goes and recorded once the SMTP
server took it, so it goes once across restarts and processes; one that
failed is released and tried at the next check (a welcome, whose secret is
kept nowhere, a few times at once instead). Without `[email]` nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Callable

from bot.clock import Clock
from bot.config import Config, SubscriberConfig
from bot.services import mail
from bot.store.protocol import MailLog

log = logging.getLogger("wagate.mail")

CHECK_EVERY = 3600.0
# A claim outlives any SMTP exchange (its timeout is 30 s); one older than
# this is a dead process's, and its mail is sent again.
LEASE = 600.0
WELCOME_TRIES = (0.0, 5.0, 30.0)  # waits before each try


class MailWorker:
    def __init__(self, store: MailLog, config: Callable[[], Config], clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[bool]] = set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.check()
            except Exception:  # the store or the server is down: the next check retries
                log.exception("mail check failed")
            try:
                await asyncio.wait_for(self._stop.wait(), CHECK_EVERY)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stop.set()

    async def drain(self, grace: float) -> None:
        """Let welcomes under way finish (bounded)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)

    async def check(self) -> int:
        """Send what is due today; how many mails went."""
        config = self.config()
        if config.email is None:
            return 0
        today, sent = self.clock.today(), 0
        for sub in list(config.subscribers.values()):
            for kind, message in mail.due(sub, config.plans, today, config.server.base_url):
                sent += await self._once(sub.id, kind, message)
        return sent

    def welcome(self, sub: SubscriberConfig, secret: str) -> asyncio.Task[bool] | None:
        """Send a new subscriber its credentials, in the background (None when
        there is no [email] or no address): the caller answers at once."""
        config = self.config()
        if config.email is None or sub.email is None:
            return None
        message = mail.welcome(config, sub, secret)
        task = asyncio.create_task(self._welcome(sub.id, f"welcome:{sub.client_id}", message),
                                   name=f"welcome-{sub.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _welcome(self, subscriber_id: str, kind: str, message: mail.Mail) -> bool:
        for wait in WELCOME_TRIES:
            await asyncio.sleep(wait)
            try:
                if await self._once(subscriber_id, kind, message):
                    return True
            except Exception:
                log.exception("welcome mail to %s not sent", subscriber_id)
            if await self._was_sent(subscriber_id, kind):
                return False
        log.error("welcome mail to %s given up: its secret is only in the API's answer",
                  subscriber_id)
        return False

    async def _was_sent(self, subscriber_id: str, kind: str) -> bool:
        return any(k == kind for k, _ in await self.store.sent_mail(subscriber_id))

    async def _once(self, subscriber_id: str, kind: str, message: mail.Mail) -> bool:
        """Send `message` unless it went (or is going) already; whether it went now."""
        settings = self.config().email
        if settings is None:
            return False
        if not await self.store.claim_mail(subscriber_id, kind, self.clock.now(), LEASE):
            return False
        try:
            await mail.send(settings, message)
        except (OSError, smtplib.SMTPException) as exc:
            await self.store.finish_mail(subscriber_id, kind, self.clock.now(), sent=False)
            # The exception's text, never the mail's: a welcome holds a secret.
            log.warning("mail %s to subscriber %s not sent: %s: %s", kind.partition(":")[0],
                        subscriber_id, type(exc).__name__, exc)
            return False
        await self.store.finish_mail(subscriber_id, kind, self.clock.now(), sent=True)
        log.info("mail %s sent to subscriber %s", kind.partition(":")[0], subscriber_id)
        return True
