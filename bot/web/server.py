"""The HTTP server `wagate serve` runs the app on, and its lifecycle.

The lifecycle (`run_app`): the port checked before anything opens, SIGHUP
reloads, SIGTERM or SIGINT drains the requests in flight, and a child of
`wagate serve --workers N` stops once its supervisor is gone.

The server is aiohttp's, answering what aiohttp refuses before any route or
middleware sees it the way wagate does.

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

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from bot.config import Config
from bot.eventloop import new_event_loop
from bot.web.catalog import Error
from bot.web.errors import error_response, parser_reason
from bot.web.keys import inflight_key, reloader_key
from bot.web.observe import SERVER

log = logging.getLogger("wagate.http")
# The process's start, reloads and stop are said as `wagate`, as the CLI's are.
lifecycle_log = logging.getLogger("wagate")

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
        response = error_response(error, text, {"Server": SERVER}, status=status)
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
                                  "the Expect header may only be 100-continue",
                                  {"Server": SERVER})
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


# ------------------------------------------------------------------ lifecycle

# The store's thread hands results back to the event loop many times a
# second; the default 5 ms GIL switch interval makes each hand-off wait
# (docs/PERFORMANCE.md, stage 1 → 2).
SWITCH_INTERVAL = 0.0005


class CannotListen(Exception):
    def __init__(self, host: str, port: int, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        shown = f"[{host}]" if ":" in host else (host or "*")
        super().__init__(f"cannot listen on {shown}:{port}: {reason[:1].lower()}{reason[1:]}")


def check_can_listen(host: str, port: int) -> None:
    """Bind (and let go of) every address the server will listen on, as it
    will (SO_REUSEADDR, IPv6 only on IPv6 sockets); raises CannotListen."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise CannotListen(host, port, exc) from None
    for family, kind, proto, _, address in dict.fromkeys(infos):
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
        except OSError as exc:
            raise CannotListen(host, port, exc) from None


def run_app(app: web.Application, config: Config, *, listen: bool,
            supervisor_fd: int | None) -> None:
    """Run `app` until SIGTERM or SIGINT (or, for a child of `serve --workers N`,
    until its supervisor is gone); SIGHUP reloads. With `listen`, on the
    configured address (shared with the group's other processes, SO_REUSEPORT,
    when supervised). Raises CannotListen, or StoreUnavailable when the store
    cannot be opened."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    with asyncio.Runner(loop_factory=new_event_loop) as loop_runner:
        loop_runner.run(_serve(app, config, listen=listen, supervisor_fd=supervisor_fd))


async def _serve(app: web.Application, config: Config, *, listen: bool,
                 supervisor_fd: int | None) -> None:
    """SIGTERM or SIGINT: stop accepting, let every request in flight finish
    (its body still uploading included) for up to shutdown_timeout, then
    aiohttp's cleanup: idle connections closed, the workers stopped (sends
    under way finish, claims released), the store closed. A second signal
    skips the wait."""
    timeout = config.server.shutdown_timeout
    runner = make_runner(app, shutdown_timeout=timeout)
    loop = asyncio.get_running_loop()

    def on_sighup() -> None:
        lifecycle_log.info("SIGHUP: reloading %s", config.path)
        app[reloader_key].request()  # a burst of signals coalesces

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    stopping, hurry = asyncio.Event(), asyncio.Event()

    def on_stop(why: str) -> None:
        if stopping.is_set():
            lifecycle_log.warning("%s again: stopping without waiting", why)
            hurry.set()
            return
        lifecycle_log.info("%s: stopping; no new connections, %d request(s) in flight",
                           why, app[inflight_key].count)
        stopping.set()

    # Before the startup: a SIGTERM while the store opens (a restarted
    # child of a group being stopped) still ends in a clean stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig.name)
    await runner.setup()
    try:
        site = None
        if listen and not stopping.is_set():
            site = web.TCPSite(runner, config.server.host, config.server.port,
                               reuse_port=True if supervisor_fd is not None else None)
            try:
                await site.start()
            except OSError as exc:  # taken since the check: said the same way
                raise CannotListen(config.server.host, config.server.port, exc) from None
        if supervisor_fd is not None:
            watch_supervisor(loop, supervisor_fd, lambda: on_stop("supervisor gone"))
        await stopping.wait()
        inflight = app[inflight_key]
        inflight.draining = True
        if site is not None:
            await site.stop()
        waits = [asyncio.ensure_future(inflight.wait_idle()),
                 asyncio.ensure_future(hurry.wait())]
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        if inflight.count:
            lifecycle_log.warning("%d request(s) still in flight after %gs: cut off",
                                  inflight.count, timeout)
    finally:
        await runner.cleanup()


def watch_supervisor(loop: asyncio.AbstractEventLoop, fd: int, gone: Callable[[], None]) -> None:
    """Call `gone` once the supervisor's end of the pipe closes (it died)."""
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            if os.read(fd, 64):
                return  # nothing is ever written; ignore
        except BlockingIOError:
            return
        loop.remove_reader(fd)
        gone()

    loop.add_reader(fd, readable)
