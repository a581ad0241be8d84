"""One error shape for every endpoint: {"error_message": ..., "error": slug}.

Also the helpers every route uses to read input the same careful way:
size-capped, uncompressed only, JSON whatever the Content-Type (or a form
where a route takes one), readable 4xx on anything bad.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn
from urllib.parse import parse_qsl

from aiohttp import web

from bot.web.catalog import Error
from bot.web.operations import UNDECLARED_ERROR, declared_errors, json_response
from bot.web.snapshot import snapshot_of

log = logging.getLogger("wagate.http")

DEFAULT_BODY_LIMIT = 1024 * 1024


class ApiError(Exception):
    def __init__(self, error: Error, message: str, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}

    @property
    def status(self) -> int:
        return self.error.status


def fail(error: Error, message: str, headers: dict[str, str] | None = None,
         extra: dict[str, Any] | None = None) -> NoReturn:
    """Answer with `error` (its status from the catalog); `extra` adds fields to
    the body, as 469 and 475 do."""
    raise ApiError(error, message, headers, extra)


def error_response(error: Error, message: str, headers: dict[str, str] | None = None, *,
                   status: int | None = None,
                   extra: dict[str, Any] | None = None) -> web.Response:
    """`status` only where the HTTP layer chose it (an aiohttp exception)."""
    return json_response({"error_message": message, "error": error, **(extra or {})},
                             status=status or error.status, headers=headers)


_HTTP_ERRORS = {e.status: e for e in (Error.BAD_REQUEST, Error.UNAUTHORIZED, Error.FORBIDDEN,
                                      Error.NOT_FOUND, Error.METHOD_NOT_ALLOWED,
                                      Error.PAYLOAD_TOO_LARGE, Error.UNSUPPORTED_MEDIA_TYPE)}


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        _check_declared(request, exc.error)
        return error_response(exc.error, exc.message, exc.headers, extra=exc.extra)
    except web.HTTPRequestEntityTooLarge:
        # (aiohttp's exception does not keep the limit; the request does.)
        return error_response(Error.PAYLOAD_TOO_LARGE,
                              f"request body too large (limit {request.client_max_size} bytes)")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.reason or "request failed"
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = " or ".join(sorted(m for m in exc.allowed_methods if m != "HEAD"))
            reason = f"{request.method} is not allowed on {request.path}; use {allowed}"
        return error_response(_HTTP_ERRORS.get(exc.status, Error.HTTP_ERROR), reason,
                              {k: v for k, v in exc.headers.items() if k == "Allow"},
                              status=exc.status)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(Error.INTERNAL_ERROR, "internal error; nothing was accepted")


def _check_declared(request: web.Request, error: Error) -> None:
    """A documented route raised an error its declaration leaves out: the answer
    is unchanged, the drift is logged (and fails the test that caused it,
    tests/conftest.py)."""
    declared = declared_errors(request.match_info.route.handler)
    if declared is not None and error not in declared:
        log.error("%s %s raised %r, which its operation does not declare (%s)",
                  request.method, request.match_info.route.resource.canonical
                  if request.match_info.route.resource else request.path, error,
                  UNDECLARED_ERROR)


# Bodies come uncompressed: WhatsMate clients and Meta send them so, and a
# decoder is one more way for a body to break (or to blow up) mid-read.
IDENTITY = frozenset({"", "identity"})


async def read_body(request: web.Request, limit: int = DEFAULT_BODY_LIMIT) -> bytes:
    """The whole body, or a readable 4xx: every route reads its body here."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in IDENTITY:
        fail(Error.UNSUPPORTED_ENCODING, f"Content-Encoding {encoding[:40]!r} is not accepted: "
             "send the body uncompressed", {"Accept-Encoding": "identity"})
    if request.content_length is not None and request.content_length > limit:
        fail(Error.PAYLOAD_TOO_LARGE, f"request body too large (limit {limit} bytes)")
    try:
        async with asyncio.timeout(snapshot_of(request).config.server.body_timeout):
            body = await request.read()
    except TimeoutError:
        fail(Error.BODY_TIMEOUT, "the request body did not arrive in time "
             f"({snapshot_of(request).config.server.body_timeout:g} s)", {"Connection": "close"})
    except web.RequestPayloadError as exc:  # e.g. broken chunked framing
        fail(Error.MALFORMED_BODY, f"the request body could not be read: {parser_reason(exc)}")
    except ConnectionResetError:  # the client went away: no traceback for what it did
        fail(Error.INCOMPLETE_BODY, "the connection closed before the whole body arrived")
    if len(body) > limit:
        fail(Error.PAYLOAD_TOO_LARGE, f"request body too large (limit {limit} bytes)")
    return body


# aiohttp's parser messages quote the bytes they refused (a header line may hold
# a secret) after a blank line, as `b'...'`, `bytearray(...)` or a long '...':
# keep the words (and a short quoted name such as 'Host') only.
_QUOTED = re.compile(r"\n\s*\n|b'|b\"|bytearray\(|\^| '[^']{30}")
_STATUS_PREFIX = re.compile(r"^\d{3}, message:\s*")


def parser_reason(error: BaseException | str) -> str:
    """aiohttp's message for a request it could not parse, on one line, without
    the bytes it quotes: fit for an answer and a log line."""
    text = error if isinstance(error, str) else (getattr(error, "message", "") or str(error))
    text = _QUOTED.split(_STATUS_PREFIX.sub("", str(text)), maxsplit=1)[0]
    return " ".join(text.split()).rstrip(" :.")[:200] or "malformed request"


def parse_json_object(body: bytes) -> dict[str, Any]:
    """JSON whatever the Content-Type said; it must be an object."""
    if not body.strip():
        fail(Error.MALFORMED_JSON, "request body is empty; a JSON object is expected")
    data = loads(body)
    if not isinstance(data, dict):
        fail(Error.MALFORMED_JSON, "request body must be a JSON object")
    if (not body.isascii() or _SUSPECT_ESCAPE.search(body)) and not _clean_strings(data):
        where, char = _first_bad_string(data)
        if char == "\x00":
            fail(Error.INVALID_TEXT, f"{where} holds a NUL character (\\u0000)")
        fail(Error.INVALID_FIELD, f"{where} is not valid Unicode: it holds a lone UTF-16 "
             f"surrogate ({ascii(char)[1:-1]}), which no text can carry")
    return data


def loads(body: bytes) -> Any:
    """`json.loads`, with a readable 400 for anything it refuses, nesting too
    deep for the parser included (a RecursionError, not a ValueError)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(Error.MALFORMED_JSON, f"request body is not valid JSON: {str(exc)[:200]}")
    except RecursionError:
        fail(Error.MALFORMED_JSON, "request body is nested too deeply")


# NUL and lone surrogates come in as \u escapes (raw control characters are not
# valid JSON) or as non-ASCII bytes (json.loads decodes with "surrogatepass", and
# takes UTF-16 and UTF-32 too): an ASCII body without such escapes has neither.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")  # json.loads joins valid pairs: these are lone


def _clean_strings(data: Any) -> bool:
    """No string (key or value) holds NUL or a lone surrogate, which no
    message can carry and the store cannot encode (iterative: any depth)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _BAD_CHAR.search(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _first_bad_string(data: Any) -> tuple[str, str]:
    """Where the first string holding NUL or a lone surrogate is (a field's
    path, as `group.name` or `parameters[1]`), and that character."""
    stack: list[tuple[str, Any]] = [("the body", data)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if found := _BAD_CHAR.search(item):
                return where, found.group()
        elif isinstance(item, dict):
            inside = "" if where == "the body" else where
            for key, value in reversed(item.items()):  # the first field is looked at first
                name = f"{inside}.{key}" if inside else str(key)
                stack.append((ascii(name)[1:-1][:100], value))
                stack.append((f"a field name in {where}", key))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))))
    raise AssertionError("called on data _clean_strings refused")


MAX_FORM_FIELDS = 100


def parse_form_pairs(body: bytes) -> list[tuple[str, str]]:
    """An application/x-www-form-urlencoded body, UTF-8, as (name, value) pairs in
    order (a repeated name is kept, for the caller to refuse)."""
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict",
                          max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        fail(Error.MALFORMED_FORM, "the form-encoded body is not UTF-8")
    except ValueError:
        fail(Error.MALFORMED_FORM,
             f"the form-encoded body has more than {MAX_FORM_FIELDS} fields")
    if any("\x00" in name or "\x00" in value for name, value in pairs):
        fail(Error.INVALID_TEXT, "fields must not hold NUL characters (%00)")
    return pairs


# What the readers above can answer, for the routes that use them to declare.
READ_ERRORS = frozenset({Error.UNSUPPORTED_ENCODING, Error.PAYLOAD_TOO_LARGE, Error.BODY_TIMEOUT,
                         Error.MALFORMED_BODY, Error.INCOMPLETE_BODY})
# (invalid_field: a string that is no text, a lone surrogate, named by its field)
JSON_ERRORS = frozenset({Error.MALFORMED_JSON, Error.INVALID_TEXT, Error.INVALID_FIELD})
FORM_ERRORS = frozenset({Error.MALFORMED_FORM, Error.INVALID_TEXT})
MULTIPART_ERRORS = frozenset({Error.MALFORMED_MULTIPART, Error.INVALID_TEXT})


async def read_json(request: web.Request, limit: int = DEFAULT_BODY_LIMIT) -> dict[str, Any]:
    return parse_json_object(await read_body(request, limit))
