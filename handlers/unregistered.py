"""Anything else from a user who has not registered: a hint, at most once an hour."""

from __future__ import annotations

from bot.dispatch import Context, Router
from bot.events import InboundMessage
from bot.locales import _
from handlers import filters

router = Router(name="unregistered")


@router.message(filters.private & filters.answerable & ~filters.registered)
async def hint(msg: InboundMessage, ctx: Context, _match: bool) -> None:
    last = ctx.state.last_hint_at
    if last is not None and ctx.now - last < ctx.config.defaults.hint_interval:
        return
    locale = ctx.locale  # the user's: a hint answers no keyword
    ctx.reply(_("You are not registered yet. Say {greeting} to register and receive messages "
                "from this number.").format(greeting=locale.greeting), kind="hint")
