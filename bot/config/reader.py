"""The TOML reader: one table at a time, with errors naming file, line and dotted key.

A leaf: the config loader, the templates and every provider's config part read
their tables with it, and it imports nothing of theirs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from bot.config.types import ConfigError


class Reader:
    """Reads one TOML table with precise errors (file, line, dotted key)."""

    def __init__(self, source: str, text: str, table: Mapping[str, Any], where: str) -> None:
        self.source = source
        self.text = text
        self.table = table
        self.where = where

    def child(self, key: str, table: Mapping[str, Any]) -> Reader:
        return Reader(self.source, self.text, table, f"{self.where}.{key}" if self.where else key)

    def error(self, key: str | None, message: str) -> ConfigError:
        dotted = f"{self.where}.{key}" if key and self.where else (key or self.where or "<top>")
        line = _line_of(self.text, f"{self.where}.{key}" if key and self.where
                        else (key or self.where))
        at = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{at}: {dotted}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise self.error(key, "is required")
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(key, f"must be {_kind_name(kind)}, not a boolean")
        if not isinstance(value, kinds):
            raise self.error(key, f"must be {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def secret(self, key: str, env: Mapping[str, str], *, required: bool = True) -> str | None:
        """`key = "..."` inline, or `key_env = "VAR"` from the environment."""
        if key in self.table:
            value = self.get(key, str)
            if not value:
                raise self.error(key, "must not be empty")
            return value
        env_key = f"{key}_env"
        if env_key in self.table:
            var = self.get(env_key, str)
            if var not in env or not env[var]:
                raise self.error(env_key, f"environment variable {var} is not set")
            return env[var]
        if required:
            raise self.error(key, f"is required (inline `{key}` or `{key}_env`)")
        return None

    def unknown_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.error(key, f"unknown key (expected one of: {known})")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table", dt.date: "a date (YYYY-MM-DD)",
             dt.datetime: "a date-time (2026-12-08T12:00:00Z)"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


_SEGMENT = re.compile(r"([^.\[\]]+)(?:\[(\d+)\])?")


def _line_of(text: str, dotted: str) -> int | None:
    """The line of a dotted key such as `subscribers[1].webhooks[0].url`: follow the
    table headers (`[[subscribers]]` the 2nd time, then `[[subscribers.webhooks]]`
    after it), then the key's `name =` line after them. Falls back to the first
    line naming the key, else None."""
    if not dotted:
        return None
    segments = [(m.group(1), m.group(2)) for m in _SEGMENT.finditer(dotted)]
    pos, found, table = 0, None, ""
    for i, (name, index) in enumerate(segments):
        table = f"{table}.{name}" if table else name
        header = re.escape(table).replace(r"\.", r"\s*\.\s*")
        if index is not None:
            matches = list(re.finditer(rf"^[ \t]*\[\[\s*{header}\s*\]\]", text[pos:],
                                       re.MULTILINE))
            if int(index) < len(matches):
                pos += matches[int(index)].start()
                found = pos
            continue
        match = re.search(rf"^[ \t]*\[\s*{header}\s*\]", text[pos:], re.MULTILINE)
        if match:
            pos += match.start()
            found = pos
        elif i == len(segments) - 1:
            # The key, within its own table: up to the next table header.
            start = text.find("\n", pos) + 1 if found is not None else 0
            end = re.search(r"^[ \t]*\[", text[start:], re.MULTILINE)
            body = text[start:start + end.start()] if end else text[start:]
            key = re.search(rf"^[ \t]*\"?{re.escape(name)}\"?\s*=", body, re.MULTILINE)
            if key:
                found = start + key.start()
    if found is None:
        name = segments[-1][0] if segments else dotted
        match = re.search(rf"^[ \t]*(\[\[?\s*)?[\w.\"]*\b{re.escape(name)}\b", text,
                          re.MULTILINE)
        found = match.start() if match else None
    if found is None:
        return None
    # Point at the line's first character, not the white space before it.
    found += len(text[found:]) - len(text[found:].lstrip())
    return text.count("\n", 0, found) + 1


def positive(r: Reader, key: str, value: float, *, allow_zero: bool = False) -> float:
    if value < 0 or (value == 0 and not allow_zero):
        raise r.error(key, "must be positive")
    return value


def check_http_url(r: Reader, key: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        hostname = parts.hostname  # raises on a broken IPv6 literal too
    except ValueError:
        raise r.error(key, f"{url!r} is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise r.error(key, f"{url!r} is not an http(s) URL")


def base_url(r: Reader, key: str, url: str) -> str:
    """An http(s) base URL others are given (ours, as they reach it): no query
    or fragment, a valid port, no trailing "/"."""
    url = url.rstrip("/")
    check_http_url(r, key, url)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise r.error(key, "must be a base URL without ?query or #fragment")
    try:
        parts.port  # noqa: B018 (parsed now, so a bad port never fails a request)
    except ValueError:
        raise r.error(key, f"{url!r} has an invalid port") from None
    return url
