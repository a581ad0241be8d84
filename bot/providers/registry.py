"""The providers this build knows, in one list: config validation (before any
app exists, e.g. `wagate check-config`) and `create_app` both read it. Adding a
provider is its package plus one line here."""

from __future__ import annotations

from bot.providers import meta, sandbox, twilio, waha
from bot.providers.base import Provider

PROVIDERS: tuple[Provider, ...] = (sandbox.PROVIDER, meta.PROVIDER, twilio.PROVIDER,
                                   waha.PROVIDER)
