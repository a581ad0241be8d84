"""One error shape for every endpoint: {"error_message": ..., "error": slug}.

Also the helpers every route uses to read input the same careful way:
size-capped, JSON whatever the Content-Type, readable 4xx on anything bad.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from aiohttp import web

log = logging.getLogger("wagate.http")

DEFAULT_BODY_LIMIT = 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, slug: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.slug = slug
        self.message = message
        self.headers = headers or {}


def fail(status: int, slug: str, message: str, headers: dict[str, str] | None = None) -> NoReturn:
    raise ApiError(status, slug, message, headers)


def error_response(status: int, slug: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error_message": message, "error": slug}, status=status,
                             headers=headers)


_SLUGS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.slug, exc.message, exc.headers)
    except web.HTTPRequestEntityTooLarge:
        # (aiohttp's exception does not keep the limit; the request does.)
        return error_response(413, "payload_too_large",
                              f"request body too large (limit {request.client_max_size} bytes)")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _SLUGS.get(exc.status, "error"),
                              exc.reason or "request failed", {k: v for k, v in exc.headers.items()
                                                               if k == "Allow"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; nothing was accepted")


async def read_body(request: web.Request, limit: int = DEFAULT_BODY_LIMIT) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        fail(413, "payload_too_large", f"request body too large (limit {limit} bytes)")
    body = await request.read()
    if len(body) > limit:
        fail(413, "payload_too_large", f"request body too large (limit {limit} bytes)")
    return body


def parse_json_object(body: bytes) -> dict[str, Any]:
    """JSON whatever the Content-Type said; it must be an object."""
    if not body.strip():
        fail(400, "malformed_json", "request body is empty; a JSON object is expected")
    data = loads(body)
    if not isinstance(data, dict):
        fail(400, "malformed_json", "request body must be a JSON object")
    if (not body.isascii() or _SUSPECT_ESCAPE.search(body)) and not _clean_strings(data):
        fail(400, "invalid_text", "strings must not hold NUL characters (\\u0000) or lone "
             "UTF-16 surrogates (\\ud800-\\udfff)")
    return data


def loads(body: bytes) -> Any:
    """`json.loads`, with a readable 400 for anything it refuses, nesting too
    deep for the parser included (a RecursionError, not a ValueError)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(400, "malformed_json", f"request body is not valid JSON: {str(exc)[:200]}")
    except RecursionError:
        fail(400, "malformed_json", "request body is nested too deeply")


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


async def read_json(request: web.Request, limit: int = DEFAULT_BODY_LIMIT) -> dict[str, Any]:
    return parse_json_object(await read_body(request, limit))
