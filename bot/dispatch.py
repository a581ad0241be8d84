"""Routers, filters and the dispatcher: inbound events to handlers to effects.

Generic machinery only; what a greeting is and what to answer lives in
`handlers/`. Routers are tried in the order they are included; within a
router, handlers in the order they were registered; the first whose filter
passes handles the message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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
    text_norm: str = ""
    region: str | None = None
    values: dict[str, Any] = field(default_factory=dict)  # filled by filters (e.g. locale)

    # -- replies, with the anti-loop rule (docs/registration.md: "Anti-loop")

    def can_auto_reply(self) -> bool:
        last = self.state.last_auto_reply_at
        return last is None or self.now - last >= self.config.defaults.auto_reply_interval

    def reply(self, text: str, *, state_change: bool = False, kind: str | None = None) -> bool:
        """Queue an auto-reply to the sender (or group). Returns False when rate-limited."""
        if not state_change and not self.can_auto_reply():
            log.debug("auto-reply suppressed for %s (rate limit)", self.message.sender)
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

    def use_locale(self, name: str) -> LocaleData:
        """Make `name` the locale of `_()` for the rest of this handler call."""
        data = self.locales[name]
        current_locale.set(data)
        return data


Handler = Callable[[InboundMessage, Context], Awaitable[None]]


class Filter:
    """A predicate over (message, context) that composes with &, | and ~."""

    __slots__ = ("_fn", "name")

    def __init__(self, fn: Callable[[InboundMessage, Context], bool], name: str = "") -> None:
        self._fn = fn
        self.name = name or getattr(fn, "__name__", "filter")

    def __call__(self, msg: InboundMessage, ctx: Context) -> bool:
        return self._fn(msg, ctx)

    def __and__(self, other: Filter) -> Filter:
        return Filter(lambda m, c: self(m, c) and other(m, c), f"({self.name} & {other.name})")

    def __or__(self, other: Filter) -> Filter:
        return Filter(lambda m, c: self(m, c) or other(m, c), f"({self.name} | {other.name})")

    def __invert__(self) -> Filter:
        return Filter(lambda m, c: not self(m, c), f"~{self.name}")

    def __repr__(self) -> str:
        return f"Filter({self.name})"


def as_filter(fn: Callable[[InboundMessage, Context], bool]) -> Filter:
    return Filter(fn)


ANY = Filter(lambda m, c: True, "any")


class Router:
    """Handlers of one module. An observing router runs every matching handler
    and lets the message go on to the next routers (forwarding, metrics)."""

    def __init__(self, *, name: str, observe: bool = False) -> None:
        self.name = name
        self.observe = observe
        self.handlers: list[tuple[Filter, Handler]] = []

    def message(self, flt: Filter = ANY) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.handlers.append((flt, handler))
            return handler
        return register


class Dispatcher:
    def __init__(self, routers: list[Router]) -> None:
        self.routers = routers

    def build_context(self, *, config: Config, locales: LocaleBook, msg: InboundMessage,
                      state: InboundContext, now: float) -> Context:
        return Context(config=config, locales=locales, instance=config.instances[msg.instance_id],
                       message=msg, state=state, now=now, effects=Effects(inbound=msg),
                       text_norm=normalize(msg.text or "") if msg.kind == "text" else "",
                       region=region_of(msg.sender))

    async def dispatch(self, ctx: Context) -> Effects:
        """Run the first matching handler; return the effects it decided."""
        msg = ctx.message
        for router in self.routers:
            for flt, handler in router.handlers:
                if not flt(msg, ctx):
                    continue
                token = current_locale.set(None)
                try:
                    await handler(msg, ctx)
                finally:
                    current_locale.reset(token)
                if not router.observe:
                    return ctx.effects
        return ctx.effects
