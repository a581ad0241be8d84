"""Opt-out (STOP, ALTO, СТОП ...) and help (HELP, AYUDA ...)."""

from __future__ import annotations

from bot.dispatch import Context, Router
from bot.effects import RegistrationWrite
from bot.events import InboundMessage
from bot.kinds import RegistrationStatus
from bot.locales import _
from handlers import filters
from handlers.filters import WordMatch

router = Router(name="optout")


@router.message(filters.stop_word & filters.private)
async def opt_out(msg: InboundMessage, ctx: Context, _match: WordMatch) -> None:
    locale = ctx.locale
    before = ctx.state.registration
    was_active = before is not None and before.active
    # Recorded even for a number that never registered: a STOP is consent
    # withdrawn, and sends to it stay refused until it says Hi.
    ctx.effects.registration = RegistrationWrite(
        instance_id=msg.instance_id, number=msg.sender,
        locale=before.locale if before else locale.name, status=RegistrationStatus.OPTED_OUT)
    ctx.reply(_("You have unsubscribed and will not receive any more messages. "
                "To register again, say {greeting}.").format(greeting=locale.greeting),
              state_change=was_active)
    if was_active:
        # `source` tells it from an admin's opt-out (bot/forwarding/routing.py).
        ctx.emit("user.unregistered",
                 {"number": msg.sender, "locale": locale.name, "source": "user"})


@router.message(filters.help_word & filters.private)
async def help_text(msg: InboundMessage, ctx: Context, _match: WordMatch) -> None:
    locale = ctx.locale
    ctx.reply(_("This number sends you messages from services you have signed up for. "
                "Say {greeting} to register, or reply {stop} to stop receiving messages.")
              .format(greeting=locale.greeting, stop=locale.stop_word))
