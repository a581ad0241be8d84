"""Filters over inbound messages: what kind of message is this?

Matching runs on the normalized text computed once per message
(`ctx.text_norm`) against keyword indexes compiled at locale load.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.dispatch import Context, Filter, as_filter
from bot.events import InboundMessage
from bot.locales import COMMON


@dataclass(frozen=True, slots=True)
class GreetingMatch:
    locale: str
    subscriber: str | None  # the subscriber named by a registration keyword


def match_greeting(ctx: Context) -> GreetingMatch | None:
    """'Hola', 'Holaaa!!', 'Hola ACME' -> a match; 'Hola, qué tal' -> None."""
    text = ctx.text_norm
    if not text:
        return None
    owners = ctx.locales.greetings.lookup(text)
    subscriber = None
    if not owners and " " in text:
        head, _, last = text.rpartition(" ")
        sub = ctx.config.subscribers_by_keyword.get(last)
        if sub is not None:
            owners = ctx.locales.greetings.lookup(head)
            subscriber = sub.id
            text = head
    if not owners:
        return None
    return GreetingMatch(locale=ctx.locales.resolve(owners, ctx.region, text),
                         subscriber=subscriber)


@as_filter
def greeting(msg: InboundMessage, ctx: Context) -> bool:
    found = match_greeting(ctx)
    if found is not None:
        ctx.values["greeting"] = found
    return found is not None


def _word_locale(ctx: Context, owners: list[str]) -> str:
    """The locale of a stop/help word. Words for everyone (STOP, HELP) answer in
    the user's language; a localized word (ALTO, СТОП) in its own."""
    if COMMON in owners:
        return user_locale(ctx)
    reg = ctx.state.registration
    if len(owners) > 1 and reg is not None and reg.locale in owners:
        return reg.locale
    return ctx.locales.resolve(owners, ctx.region, ctx.text_norm)


@as_filter
def stop_word(msg: InboundMessage, ctx: Context) -> bool:
    owners = ctx.locales.stop_words.lookup(ctx.text_norm) if ctx.text_norm else []
    if owners:
        ctx.values["locale"] = _word_locale(ctx, owners)
    return bool(owners)


@as_filter
def help_word(msg: InboundMessage, ctx: Context) -> bool:
    owners = ctx.locales.help_words.lookup(ctx.text_norm) if ctx.text_norm else []
    if owners:
        ctx.values["locale"] = _word_locale(ctx, owners)
    return bool(owners)


in_group = Filter(lambda m, c: m.group is not None, "in_group")
private = ~in_group
registered = Filter(lambda m, c: c.state.registration is not None
                    and c.state.registration.active, "registered")


def user_locale(ctx: Context) -> str:
    """The user's locale when no keyword says: registration, else country, else default."""
    reg = ctx.state.registration
    if reg is not None and reg.locale in ctx.locales.locales:
        return reg.locale
    return ctx.locales.region_locale(ctx.region)
