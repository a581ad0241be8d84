"""Filters over inbound messages: what kind of message is this?

Matching runs on the normalized text computed once per message
(`ctx.text_norm`) against keyword indexes compiled at locale load. A filter's
match is typed: a greeting gives a `GreetingMatch`, a stop or help word a
`WordMatch`; `answer_locale` turns the match into the locale the handler
answers in, chosen by the dispatcher before the handler runs.

A word can be a command in one language and an ordinary word in another
("acha" is Swahili's "leave it" and Hindi's "OK"), so a keyword only counts
for a user it can be meant by (docs/registration.md):
- a stop word counts when it is a word for everyone (STOP), or of the user's
  language (the one they registered in), or of a language of the number's
  country: an opt-out by mistake loses a subscriber a customer, a user kept in
  by mistake costs a complaint, so a stranger's word does not opt anyone out;
- a greeting a registered user's own language has (or one of no language,
  Ching) keeps their language (a French speaker on a Romanian number saying
  Salut stays French); else one shared by several languages goes by the
  number's country;
- a greeting listed as `local` (an ordinary word elsewhere: Vietnamese "Chao",
  the Spanish goodbye) counts only for a user of its language.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.dispatch import Context, Filter
from bot.events import InboundMessage
from bot.locales import COMMON


@dataclass(frozen=True, slots=True)
class GreetingMatch:
    locale: str
    subscriber: str | None  # the subscriber named by a registration keyword


@dataclass(frozen=True, slots=True)
class WordMatch:
    """A stop or help word, and the locale to answer it in."""

    locale: str


def match_greeting(msg: InboundMessage, ctx: Context) -> GreetingMatch | None:
    """'Hola', 'Holaaa!!', 'Hola ACME' -> a match; 'Hola, qué tal' -> None."""
    text = ctx.text_norm
    if not text:
        return None
    owners = _greeting_owners(ctx, text)
    subscriber = None
    if not owners and " " in text:
        head, _, last = text.rpartition(" ")
        sub = ctx.config.subscribers_by_keyword.get(last)
        if sub is not None:
            owners = _greeting_owners(ctx, head)
            subscriber = sub.id
            text = head
    if not owners:
        return None
    reg = ctx.state.registration
    if reg is not None and (reg.locale in owners or (COMMON in owners
                            and reg.locale in ctx.locales.locales)):
        # Their language has it too, or no language does (Ching): theirs is kept.
        return GreetingMatch(locale=reg.locale, subscriber=subscriber)
    return GreetingMatch(locale=ctx.locales.resolve(owners, ctx.region, text),
                         subscriber=subscriber)


def _greeting_owners(ctx: Context, text: str) -> list[str]:
    """The locales `text` is a greeting of, for this user (a local one only if theirs)."""
    owners = ctx.locales.greetings.lookup(text)
    local = ctx.locales.local_greetings.lookup(text) if owners else []
    if local:  # 'Chaooo' is Chao too
        owners = [o for o in owners if o not in local or _speaks(ctx, o)]
    return owners


def _speaks(ctx: Context, locale: str) -> bool:
    """Whether the user is one of `locale`'s: registered in it, or their number's
    country speaks it."""
    reg = ctx.state.registration
    return (reg is not None and reg.locale == locale) or \
        locale in ctx.locales.country_locales(ctx.region)


def _word_locale(ctx: Context, owners: list[str]) -> str:
    """The locale of a stop/help word. Words for everyone (STOP, HELP) answer in
    the user's language; a localized word (ALTO, СТОП) in its own."""
    if COMMON in owners:
        return user_locale(ctx)
    reg = ctx.state.registration
    if len(owners) > 1 and reg is not None and reg.locale in owners:
        return reg.locale
    return ctx.locales.resolve(owners, ctx.region, ctx.text_norm)


def match_stop(msg: InboundMessage, ctx: Context) -> WordMatch | None:
    """A stop word this user can mean: for everyone, or of a language they speak."""
    owners = ctx.locales.stop_words.lookup(ctx.text_norm) if ctx.text_norm else []
    if not owners:
        return None
    if COMMON not in owners:
        owners = [o for o in owners if _speaks(ctx, o)]
    return WordMatch(locale=_word_locale(ctx, owners)) if owners else None


def match_help(msg: InboundMessage, ctx: Context) -> WordMatch | None:
    owners = ctx.locales.help_words.lookup(ctx.text_norm) if ctx.text_norm else []
    return WordMatch(locale=_word_locale(ctx, owners)) if owners else None


greeting: Filter[GreetingMatch] = Filter(match_greeting, "greeting")
stop_word: Filter[WordMatch] = Filter(match_stop, "stop_word")
help_word: Filter[WordMatch] = Filter(match_help, "help_word")
in_group: Filter[bool] = Filter(lambda m, c: m.group is not None, "in_group")
private = ~in_group
# What a user wrote or tapped (and request_welcome): the only messages an
# automatic hint may answer; never a reaction, an edit, a revoke, a notice.
answerable: Filter[bool] = Filter(lambda m, c: m.kind.answerable, "answerable")
registered: Filter[bool] = Filter(lambda m, c: c.state.registration is not None
                                  and c.state.registration.active, "registered")


def user_locale(ctx: Context) -> str:
    """The user's locale when no keyword says: registration, else country, else default."""
    reg = ctx.state.registration
    if reg is not None and reg.locale in ctx.locales.locales:
        return reg.locale
    return ctx.locales.region_locale(ctx.region)


_KEYWORD_MATCHES = (GreetingMatch, WordMatch)


def answer_locale(match: object, ctx: Context) -> str:
    """The locale a handler answers in: the keyword's, else the user's."""
    if isinstance(match, _KEYWORD_MATCHES):
        return match.locale
    return user_locale(ctx)
