"""The typed words (bot/kinds.py) and typed filter matches (bot/dispatch.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from bot.config import Config
from bot.dispatch import ANY, Context, Dispatcher, Filter, Router
from bot.events import InboundMessage
from bot.kinds import STATUSES, MessageKind, RegistrationStatus, Status
from bot.locales import _, current_locale, load_locales
from bot.providers.meta.caps import CAPS as META
from bot.providers.twilio.caps import CAPS as TWILIO
from bot.providers.waha.caps import CAPS as WAHA
from bot.store.models import InboundContext
from handlers import filters


def test_members_are_their_words() -> None:
    assert MessageKind.TEXT == "text" and f"{Status.READ}" == "read"
    assert json.dumps({"s": RegistrationStatus.OPTED_OUT}) == '{"s": "opted_out"}'
    assert STATUSES == ("sent", "delivered", "read", "played", "failed")
    assert all(type(s) is str for s in STATUSES)  # argparse's refusal quotes them as typed


def test_provider_words_parse_to_a_status_none_or_unknown() -> None:
    assert Status.parse("delivered", META.statuses) is Status.DELIVERED
    assert Status.parse("undelivered", TWILIO.statuses) is Status.FAILED
    assert Status.parse("PLAYED", WAHA.statuses) is Status.PLAYED
    assert Status.parse("played", META.statuses) is Status.PLAYED
    assert Status.parse("queued", TWILIO.statuses) is None  # known, moves nothing
    for word in ("deleted", "SENT", "", None, 3, ["sent"]):
        assert Status.parse(word, META.statuses) is Status.UNKNOWN


def test_kind_words_parse_to_unsupported_when_unknown() -> None:
    assert MessageKind.parse("sticker") is MessageKind.STICKER
    assert MessageKind.parse("location") is MessageKind.LOCATION
    for word in ("hologram", None, {"type": "x"}):
        assert MessageKind.parse(word) is MessageKind.UNSUPPORTED


def test_what_registers_and_what_a_hint_may_answer() -> None:
    typed = {k for k in MessageKind if k.typed}
    assert typed == {MessageKind.TEXT, MessageKind.INTERACTIVE, MessageKind.BUTTON}
    silent = {k for k in MessageKind if not k.answerable}
    assert silent == {MessageKind.REACTION, MessageKind.EDIT, MessageKind.REVOKE,
                      MessageKind.SYSTEM, MessageKind.ORDER, MessageKind.UNSUPPORTED}
    assert MessageKind.REQUEST_WELCOME.answerable and MessageKind.VOICE.has_media


def test_filters_hand_over_typed_matches() -> None:
    msg, ctx = cast(InboundMessage, None), cast(Context, None)
    word: Filter[str] = Filter(lambda m, c: "es", "word")
    nothing: Filter[str] = Filter(lambda m, c: None, "nothing")
    yes: Filter[bool] = Filter(lambda m, c: True, "yes")
    no: Filter[bool] = Filter(lambda m, c: False, "no")
    assert (word & yes)(msg, ctx) == "es"  # the left side's match when both match
    assert not (word & no)(msg, ctx) and not (nothing & yes)(msg, ctx)
    assert (nothing | word)(msg, ctx) == "es"
    assert (~nothing)(msg, ctx) is True and (~word)(msg, ctx) is False
    both: Filter[Any] = word & ~no
    assert both.name == "(word & ~no)"


HINT = ("You are not registered yet. Say {greeting} to register and receive messages "
        "from this number.")


async def test_the_dispatcher_chooses_the_locale_before_a_handler_runs(
        make_config: Callable[..., Config]) -> None:
    """A handler that never names a locale still answers in the user's (or the
    keyword's) language: the dispatcher set it from the match before the call."""
    config = make_config()
    locales = load_locales(config.locales_dir, config.defaults.locale)
    seen: list[tuple[str, str]] = []
    router = Router(name="probe")

    @router.message(filters.greeting)
    async def greeted(msg: InboundMessage, ctx: Context, match: filters.GreetingMatch) -> None:
        seen.append((ctx.locale.name, _(HINT)))

    @router.message(ANY)
    async def anything(msg: InboundMessage, ctx: Context, _match: bool) -> None:
        seen.append((ctx.locale.name, _(HINT)))

    dispatcher = Dispatcher([router], choose_locale=filters.answer_locale)
    state = InboundContext(registration=None, group=None, last_auto_reply_at=None,
                           last_hint_at=None)
    for text, sender in (("Ciao", "+34600000001"), ("what?", "+34600000001"),
                         ("what?", "+15550009999")):
        msg = InboundMessage(provider="sandbox", provider_message_id=text + sender,
                             instance_id=1, sender=sender, text=text, timestamp=1.0)
        ctx = dispatcher.build_context(config=config, locales=locales, msg=msg, state=state,
                                       now=2.0)
        await dispatcher.dispatch(ctx)
    assert [name for name, _text in seen] == ["it", "es", "en"]
    assert seen[0][1] == locales["it"].messages[HINT] and seen[2][1] == HINT
    assert current_locale.get() is None  # and reset after the call
