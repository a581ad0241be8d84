"""The HTTP server `wagate serve` runs the app on: aiohttp's, answering what
aiohttp refuses before any route or middleware sees it the way wagate does.

aiohttp answers a request it cannot parse (bad request line, bad header bytes,
a header line over 8190 bytes, bad chunked framing, a bad Content-Length)
with plain text and logs an ERROR with a traceback per request, which any
client can cause at will. Here such a request gets the JSON error shape with
a fitting 4xx and one INFO line without the bytes it sent; so does an
Expect header other than 100-continue (which aiohttp answered with a 500 and
a traceback when it was not UTF-8). Two more holes are closed:

- aiohttp decodes gzip/deflate bodies as they arrive unless told not to, and
  a body that stops decoding at its end leaves the handler reading it
  waiting forever. wagate takes uncompressed bodies only (415 otherwise,
  `bot.web.errors.read_body`), so nothing is decoded.
- A framing error in the middle of a body (chunked encoding broken after the
  handler began reading) is queued by aiohttp as a request of its own behind
  the one whose body it broke, and that body then waits forever. Here the
  body fails at once: the route answers 400 and the connection closes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from bot.web.catalog import Error
from bot.web.errors import error_response, parser_reason

log = logging.getLogger("wagate.http")

# aiohttp's defaults, named: what a request line, a header field, a header count may be.
MAX_LINE = 8190
MAX_FIELD = 8190
MAX_HEADERS = 128


def make_runner(app: web.Application, *, shutdown_timeout: float) -> web.AppRunner:
    """The runner `wagate serve` starts its site on (no access log: requests are
    measured by the observe middleware)."""
    return _Runner(app, access_log=None, shutdown_timeout=shutdown_timeout,
                   auto_decompress=False, max_line_size=MAX_LINE, max_field_size=MAX_FIELD,
                   max_headers=MAX_HEADERS)


def _refusal(status: int, exc: BaseException | None,
             message: str | None) -> tuple[int, Error, str]:
    """(status, error, message) for a request aiohttp refused before routing."""
    if isinstance(exc, LineTooLong):
        return (431, Error.HEADER_TOO_LARGE, f"the request line or a header field is longer "
                f"than {MAX_LINE} bytes")
    reason = parser_reason(exc if exc is not None else message or "")
    if reason.startswith("Too many headers"):
        return 431, Error.HEADER_TOO_LARGE, f"more than {MAX_HEADERS} header fields"
    if status >= 500:
        return status, Error.INTERNAL_ERROR, "internal error; nothing was accepted"
    return status, Error.MALFORMED_REQUEST, f"malformed HTTP request: {reason}"


class _Connection(RequestHandler):
    """One client connection, as aiohttp handles it, with wagate's answers."""

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        status, error, text = _refusal(status, exc, message)
        if isinstance(exc, ConnectionError):  # the client went away (e.g. during 100-continue)
            log.debug("client %s went away: %s", request.remote, exc)
        elif status >= 500:  # an error of ours that escaped the middleware: keep the traceback
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        elif isinstance(exc, BadHttpMethod) and self._request_count == 1:
            # Not HTTP at all (TLS, scanners) on a fresh connection: routine on any port.
            log.debug("not an HTTP request from %s: %s", request.remote, text)
        else:
            log.info("malformed request from %s answered %d: %s", request.remote, status, text)
        if request.writer.output_size > 0:  # as aiohttp: an answer is on its way already
            raise ConnectionError("an answer was sent already; the connection is closed")
        response = error_response(error, text, status=status)
        response.force_close()
        return response

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages and not isinstance(self._messages[-1][0], RawRequestMessage):
            self._fail_unfinished_bodies()

    def _fail_unfinished_bodies(self) -> None:
        """The parser failed while a body was still arriving: fail that body now
        (its route answers 400) instead of queueing the error behind it."""
        bodies = [payload for _, payload in self._messages]
        if self._current_request is not None:
            bodies.append(self._current_request.content)
        unfinished = [body for body in bodies if not body.is_eof()]
        if not unfinished:
            return  # the error is a request of its own: handle_error answers it
        info = self._messages[-1][0]
        while self._messages and not isinstance(self._messages[-1][0], RawRequestMessage):
            self._messages.pop()
        for body in unfinished:
            body.set_exception(web.RequestPayloadError(getattr(info, "message", "")))
            body.feed_eof()  # read() raises the error; aiohttp does not wait for more
        self.close()  # the parser is done for: close once the route has answered


Handler = Callable[[BaseRequest], Awaitable[web.StreamResponse]]


def _expect_checked(handle: Handler) -> Handler:
    """aiohttp answers an Expect header other than 100-continue before any
    middleware, in plain text, and fails with a 500 when the value is not UTF-8."""
    async def checked(request: BaseRequest) -> web.StreamResponse:
        expect = request.headers.get("Expect")
        if expect is not None and expect.strip().lower() != "100-continue":
            log.info("request from %s with an unknown Expect header answered 417",
                     request.remote)
            return error_response(Error.EXPECTATION_FAILED,
                                  "the Expect header may only be 100-continue")
        return await handle(request)
    return checked


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # the app's startup runs here
        return _Server(_expect_checked(server.request_handler),
                       request_factory=server.request_factory,
                       handler_cancellation=server.handler_cancellation, loop=server._loop,
                       **server._kwargs)
