"""Registration by greeting: "Hi", "Hola", "你好" ... opt a user (or a group) in."""

from __future__ import annotations

from bot.dispatch import Context, Router
from bot.effects import GroupWrite, RegistrationWrite
from bot.events import InboundMessage
from bot.kinds import RegistrationStatus
from bot.locales import _
from handlers import filters
from handlers.filters import GreetingMatch

router = Router(name="registration")


@router.message(filters.greeting & filters.private)
async def register_user(msg: InboundMessage, ctx: Context, match: GreetingMatch) -> None:
    locale = ctx.locale
    before = ctx.state.registration
    ctx.effects.registration = RegistrationWrite(
        instance_id=msg.instance_id, number=msg.sender, locale=match.locale,
        status=RegistrationStatus.ACTIVE,
        keyword_subscriber=match.subscriber)
    if before is not None and before.active:
        # The stored locale follows the latest greeting; the reply is rate-limited.
        ctx.reply(_("You are already registered. To stop receiving messages, reply {stop}.")
                  .format(stop=locale.stop_word))
        return
    ctx.reply(_("You are registered. You can now receive messages from this number. "
                "To stop, reply {stop}.").format(stop=locale.stop_word), state_change=True)
    ctx.emit("user.registered", {"number": msg.sender, "locale": match.locale,
                                 "keyword_subscriber": match.subscriber})


@router.message(filters.greeting & filters.in_group)
async def register_group(msg: InboundMessage, ctx: Context, match: GreetingMatch) -> None:
    assert msg.group is not None
    name = msg.group.name or (ctx.state.group.name if ctx.state.group else None) or msg.group.id
    ctx.effects.group = GroupWrite(instance_id=msg.instance_id, group_id=msg.group.id, name=name)
    if ctx.state.group is not None:
        ctx.reply(_('This group is already registered as "{name}".').format(name=name))
        return
    ctx.reply(_('This group is now registered as "{name}" and can receive messages from this '
                "number.").format(name=name), state_change=True)
