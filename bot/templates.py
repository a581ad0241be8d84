"""Approved message templates (`[[templates]]`), provider-neutral.

A provider with a customer-service window (Capabilities.service_window) sends
free-form messages only within 24 hours of the user's last message; outside
it only a template the provider approved goes through. This module reads the
templates from the config, picks one for a send, and fills it; the outbound
row carries the result as JSON (`TemplateUse`), which the provider's sender
turns into its own payload.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from bot.config.reader import Reader
from bot.config.types import TemplateConfig, Templates

CATEGORIES = ("utility", "marketing", "authentication")
HEADERS = ("none", "image", "document")
USES = ("notification",)
MAX_PARAMETER = 1024  # Meta's limit for one body parameter's text
_PARAM_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateUse:
    """One message as a template: what the outbound row stores and a sender reads."""

    name: str
    language: str | None  # None: chosen from the user's locale when it is queued
    category: str
    parameters: list[str] | dict[str, str]
    header: str = "none"  # none | image | document (the row's media)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "language": self.language,
                           "category": self.category, "parameters": self.parameters,
                           "header": self.header}, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> TemplateUse:
        data: dict[str, Any] = json.loads(raw)
        return cls(name=data["name"], language=data.get("language"),
                   category=data.get("category", "utility"),
                   parameters=data.get("parameters") or [], header=data.get("header", "none"))


def header_for(kind: str) -> str:
    """The media header a notification needs to carry a message of this kind."""
    return kind if kind in ("image", "document") else "none"


def parameter_text(text: str) -> str:
    """A message's text as a body parameter: providers refuse new lines, tabs and
    long runs of spaces there, so white space becomes single spaces."""
    return " ".join(text.split())[:MAX_PARAMETER]


def notification_use(template: TemplateConfig, *, kind: str, text: str | None,
                     caption: str | None, filename: str | None, locale: str | None) -> TemplateUse:
    """A send filled into its notification template: the text (or the caption,
    else the file name) becomes {{1}}; media go in the header."""
    params: list[str] = []
    if template.parameter_count == 1:
        params = [parameter_text(text or caption or filename or kind) or kind]
    return TemplateUse(name=template.name, language=template.language_for(locale),
                       category=template.category, parameters=params, header=template.header)


# ---- config


def parse_templates(top: Reader, raw: list[Any], *, window_instances: Collection[int],
                    instances: Collection[int], subscribers: Collection[str]) -> Templates:
    """`[[templates]]`, validated, with the lookups compiled. `window_instances`:
    the instances whose provider takes templates."""
    parsed: list[TemplateConfig] = []
    for index, table in enumerate(raw):
        r = top.child(f"templates[{index}]", table if isinstance(table, dict) else {})
        if not isinstance(table, dict):
            raise r.error(None, "must be a table")
        parsed.append(_parse_one(r, window_instances=window_instances, instances=instances,
                                 subscribers=subscribers))
    notifications: dict[tuple[int, str | None, str], TemplateConfig] = {}
    by_name: dict[tuple[int, str | None, str], TemplateConfig] = {}
    # Instance-specific entries win over ones for every instance: apply those last.
    for index, t in sorted(enumerate(parsed), key=lambda it: bool(it[1].instances)):
        for inst in t.instances or tuple(window_instances):
            if t.use == "notification":
                key = (inst, t.subscriber, t.header)
                if key in notifications and bool(notifications[key].instances) == bool(
                        t.instances):
                    who = f"subscriber {t.subscriber!r}" if t.subscriber else "every subscriber"
                    raise top.child(f"templates[{index}]", table_of(raw, index)).error(
                        "use", f"a second notification template with header {t.header!r} "
                        f"for instance {inst} and {who}")
                notifications[key] = t
            by_name[(inst, t.subscriber, t.name)] = t
    return Templates(all=tuple(parsed), notifications=notifications, by_name=by_name)


def table_of(raw: list[Any], index: int) -> Mapping[str, Any]:
    table = raw[index]
    return table if isinstance(table, dict) else {}


def _parse_one(r: Reader, *, window_instances: Collection[int], instances: Collection[int],
               subscribers: Collection[str]) -> TemplateConfig:
    r.unknown_keys({"name", "instances", "subscriber", "category", "use", "parameters",
                    "header", "languages"})
    name = r.get("name", str)
    if not re.fullmatch(r"[A-Za-z0-9_]{1,512}", name):
        raise r.error("name", "must be the approved template's name (letters, digits, _)")
    listed = r.get("instances", list, [])
    for inst in listed:
        if not isinstance(inst, int) or isinstance(inst, bool) or inst not in instances:
            raise r.error("instances", f"{inst!r} is not a configured instance")
        if inst not in window_instances:
            raise r.error("instances", f"instance {inst}'s provider sends no templates")
    subscriber = r.get("subscriber", str, None)
    if subscriber is not None and subscriber not in subscribers:
        raise r.error("subscriber", f"unknown subscriber {subscriber!r}")
    category = r.get("category", str)
    if category not in CATEGORIES:
        raise r.error("category", "must be one of " + ", ".join(CATEGORIES))
    use = r.get("use", str, None)
    if use is not None and use not in USES:
        raise r.error("use", "must be \"notification\" (or left out for explicit sends only)")
    header = r.get("header", str, "none")
    if header not in HEADERS:
        raise r.error("header", "must be one of " + ", ".join(HEADERS))
    params = r.get("parameters", (int, list), 0)
    names: tuple[str, ...] = ()
    count = 0
    if isinstance(params, list):
        if not params or not all(isinstance(p, str) and _PARAM_NAME.fullmatch(p)
                                 for p in params) or len(set(params)) != len(params):
            raise r.error("parameters", "must be a count, or a list of distinct parameter "
                          "names (lower case letters, digits, _)")
        names = tuple(params)
    elif not 0 <= params <= 100:
        raise r.error("parameters", "must be between 0 and 100")
    else:
        count = params
    if use == "notification" and (names or count > 1):
        raise r.error("parameters", "a notification template takes 0 or 1 body parameters "
                      "(the message text fills {{1}})")
    languages = r.get("languages", dict)
    if "*" not in languages:
        raise r.error("languages", 'needs a "*" entry: the language for every other locale')
    for locale, code in languages.items():
        if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?",
                                                         code):
            raise r.error("languages", f"{locale} = {code!r} is not a language code such as "
                          "\"en_US\"")
    return TemplateConfig(name=name, category=category, languages=dict(languages),
                          instances=tuple(listed), subscriber=subscriber, use=use,
                          parameters=count, parameter_names=names, header=header)
