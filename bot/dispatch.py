"""Routers, filters and the dispatcher: inbound events to handlers to effects.

Generic machinery only; what a greeting is and what to answer lives in
`handlers/`. Routers are tried in the order they are included; within a
router, handlers in the order they were registered; the first whose filter
matches handles the message, and is handed the filter's match (typed: a
greeting filter hands over a greeting match, a plain predicate `True`).

The locale a handler answers in is chosen here, before the handler runs, from
its match (aiogram's i18n middleware): `ctx.locale` and `_()` are set for the
whole call, so no handler can forget to choose one and answer in English.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bot.config import Config, InstanceConfig
from bot.effects import Effects, OutboundDraft, WebhookEvent
from bot.events import InboundMessage
from bot.forwarding.payloads import user_fields
from bot.locales import LocaleBook, LocaleData, current_locale, normalize, region_of
from bot.store.models import InboundContext
from bot.store.rules import inbound_time
from bot.window import open_until

log = logging.getLogger("wagate.dispatch")


@dataclass(slots=True)
class Context:
    """Everything a handler may read, and the effects it may add."""

    config: Config
    locales: LocaleBook
    instance: InstanceConfig
    message: InboundMessage
    state: InboundContext
    now: float
    effects: Effects
    locale: LocaleData  # what the running handler answers in (set by the dispatcher)
    text_norm: str = ""
    region: str | None = None

    # -- replies, with the anti-loop rule (docs/registration.md: "Anti-loop")

    def can_auto_reply(self) -> bool:
        last = self.state.last_auto_reply_at
        return last is None or self.now - last >= self.config.defaults.auto_reply_interval

    def reply(self, text: str, *, state_change: bool = False, kind: str | None = None) -> bool:
        """Queue an auto-reply to the sender (or group). Returns False when rate-limited."""
        if not state_change and not self.can_auto_reply():
            # At info: otherwise a user's unanswered "HELP" reads as a fault.
            last = self.state.last_auto_reply_at or self.now
            log.info("auto-reply to %s suppressed: last one %.0f s ago, interval %g s",
                     self.message.group.id if self.message.group else self.message.sender,
                     self.now - last, self.config.defaults.auto_reply_interval)
            return False
        msg = self.message
        self.effects.replies.append(OutboundDraft(
            instance_id=msg.instance_id, to=None if msg.group else msg.sender,
            group_id=msg.group.id if msg.group else None, type="text", text=text))
        self.effects.auto_reply_marks.append("any")
        if kind:
            self.effects.auto_reply_marks.append(kind)
        return True

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        msg = self.message
        if type_.startswith("user.") and msg.group is None:
            window = (open_until(inbound_time(msg.timestamp, self.now))
                      if msg.instance_id in self.config.window_instances else None)
            data = {**data, **user_fields(user_id=msg.user_id, window_open_until=window)}
        self.effects.events.append(WebhookEvent(
            type=type_, instance_id=msg.instance_id, data=data,
            number=None if msg.group else msg.sender,
            group_id=msg.group.id if msg.group else None))


M = TypeVar("M")
N = TypeVar("N")

# A handler gets the message, the context and its filter's match.
Handler = Callable[[InboundMessage, Context, M], Awaitable[None]]


class Filter(Generic[M]):
    """A test over (message, context) whose result is its match, of type M, or
    None (or False) when it does not match. Composes with &, | and ~: `a & b`
    gives a's match when b matches too, `a | b` the first match, `~a` True when
    a does not match."""

    __slots__ = ("_fn", "name")

    def __init__(self, fn: Callable[[InboundMessage, Context], M | None], name: str = "") -> None:
        self._fn = fn
        self.name = name or getattr(fn, "__name__", "filter")

    def __call__(self, msg: InboundMessage, ctx: Context) -> M | None:
        return self._fn(msg, ctx)

    def __and__(self, other: Filter[Any]) -> Filter[M]:
        def both(m: InboundMessage, c: Context) -> M | None:
            found = self(m, c)
            return found if found and other(m, c) else None
        return Filter(both, f"({self.name} & {other.name})")

    def __or__(self, other: Filter[N]) -> Filter[M | N]:
        def either(m: InboundMessage, c: Context) -> M | N | None:
            return self(m, c) or other(m, c)
        return Filter(either, f"({self.name} | {other.name})")

    def __invert__(self) -> Filter[bool]:
        return Filter(lambda m, c: not self(m, c), f"~{self.name}")

    def __repr__(self) -> str:
        return f"Filter({self.name})"


ANY: Filter[bool] = Filter(lambda m, c: True, "any")

# The locale a handler answers in, from its match (handlers/ says which).
LocaleChooser = Callable[[Any, Context], str]


class Router:
    """Handlers of one module. An observing router runs every matching handler
    and lets the message go on to the next routers (forwarding, metrics)."""

    def __init__(self, *, name: str, observe: bool = False) -> None:
        self.name = name
        self.observe = observe
        self.handlers: list[tuple[Filter[Any], Handler[Any]]] = []

    def message(self, flt: Filter[M]) -> Callable[[Handler[M]], Handler[M]]:
        def register(handler: Handler[M]) -> Handler[M]:
            self.handlers.append((flt, handler))
            return handler
        return register


class Dispatcher:
    def __init__(self, routers: list[Router], *, choose_locale: LocaleChooser) -> None:
        self.routers = routers
        self.choose_locale = choose_locale

    def build_context(self, *, config: Config, locales: LocaleBook, msg: InboundMessage,
                      state: InboundContext, now: float) -> Context:
        return Context(config=config, locales=locales, instance=config.instances[msg.instance_id],
                       message=msg, state=state, now=now, effects=Effects(inbound=msg),
                       locale=locales.locales[locales.default],
                       # Keywords read what the user wrote or tapped (a text, a
                       # button's or a list row's title), never an edit or a caption.
                       text_norm=normalize(msg.text or "") if msg.kind.typed
                       else "", region=region_of(msg.sender))

    async def dispatch(self, ctx: Context) -> Effects:
        """Run the first matching handler; return the effects it decided."""
        msg = ctx.message
        for router in self.routers:
            for flt, handler in router.handlers:
                match = flt(msg, ctx)
                if not match:
                    continue
                ctx.locale = ctx.locales.locales[self.choose_locale(match, ctx)]
                token = current_locale.set(ctx.locale)
                try:
                    await handler(msg, ctx, match)
                finally:
                    current_locale.reset(token)
                if not router.observe:
                    return ctx.effects
        return ctx.effects
