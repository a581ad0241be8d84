"""Logging set-up: readable text for people, JSON lines for machines.

Every record carries the id of the HTTP request it was logged under (set by
the request middleware in a ContextVar, "-" outside a request), so one
request's lines can be found together. What is logged at INFO and above
never holds a secret or a message body; bodies appear at DEBUG at most.

Nothing a client sends can forge a line of the text log: control characters
(CR, LF, ESC, the C1 set, Unicode's line separators) and lone surrogates in a
record's message are written as escapes (`\\r`, `\\x1b`, `\\u2028`), and the
lines of a traceback are indented, so every line that starts in the first
column is one record's own. The JSON format escapes them by construction.
"""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

ExcInfo = (tuple[type[BaseException], BaseException, TracebackType | None]
           | tuple[None, None, None])

request_id: ContextVar[str] = ContextVar("request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and lone
# surrogates (which no stream can encode): each is written as its escape.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100
                                else f"\\u{ord(char):04x}")


def escape_controls(text: str) -> str:
    """`text` on one line, its control characters written as escapes."""
    return _UNSAFE.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """The text format, one line per record whatever its values hold."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: ExcInfo) -> str:
        # A traceback's lines (its exception's message among them) indented, escaped within.
        return "\n".join("    " + escape_controls(line)
                         for line in super().formatException(ei).splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("    " + escape_controls(line) for line in stack_info.splitlines())


def url_for_log(url: str) -> str:
    """A URL as it may be logged: without its query, fragment and user info,
    where people put tokens (`?token=...`, `https://user:pass@host/`)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    hidden = "?…" if parts.query or parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + hidden


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z", "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        rid = getattr(record, "request_id", "-")
        if rid != "-":
            entry["request_id"] = rid
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(*, level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
