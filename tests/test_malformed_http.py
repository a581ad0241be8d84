"""Malformed HTTP against the real `wagate serve`: what aiohttp refuses before any
route runs is answered with the JSON error shape and a 4xx, logs one line at
most and never a traceback, and no input leaves a request hanging."""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.test_operations_cli import TOKEN, Proc, start, stop

# Each exchange waits at most this long: a request left hanging fails here.
PATIENCE = 30.0
# How `wagate serve` writes a log line (text format): anything else is a traceback.
ONE_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING) ")
AUTH = f"Authorization: Bearer {TOKEN}\r\n"
INBOUND_BODY = b'{"instance": 1, "from": "123", "text": "x"}'  # a 400 that writes nothing


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket) -> Answer | None:
    """The first response on the connection (None when it closed without one)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = _recv(sock)
        if not chunk:
            break
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body[:length])


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def exchange(port: int, *parts: bytes) -> Answer | None:
    """Send `parts` on a fresh connection (a pause between them, so the server has
    begun handling the request before the next part lands) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        for i, part in enumerate(parts):
            if i:
                time.sleep(0.3)
            try:
                sock.sendall(part)
            except OSError:  # refused and closed before it all went: read what came
                break
        return read_answer(sock)


def assert_json_error(answer: Answer | None, status: int | tuple[int, ...]) -> dict[str, Any]:
    assert answer is not None, "no answer"
    statuses = (status,) if isinstance(status, int) else status
    assert answer.status in statuses, (answer.status, answer.body[:300])
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert set(body) == {"error_message", "error"}, body
    assert body["error"] and body["error_message"]
    return body


def log_between_start_and_stop(svc: Proc) -> list[str]:
    """The service's log lines while it served (startup and shutdown lines left out)."""
    svc.proc.send_signal(signal.SIGTERM)
    svc.proc.wait(15)
    lines = svc.log.read_text().splitlines()
    start_at = next(i for i, line in enumerate(lines) if "wagate serving on" in line)
    stop_at = next(i for i, line in enumerate(lines) if "SIGTERM: stopping" in line)
    return lines[start_at + 1:stop_at]


def assert_quiet(lines: list[str], requests: int) -> None:
    """No traceback, nothing at ERROR, at most one line per request."""
    for line in lines:
        assert ONE_LINE.match(line), f"not a one-line INFO/WARNING log record: {line!r}"
    assert len(lines) <= requests, lines


@pytest.fixture
def svc(tmp_path: Any) -> Iterator[Proc]:
    p = start(tmp_path)
    yield p
    stop(p)


def post_inbound(*extra_headers: str, body: bytes = INBOUND_BODY) -> bytes:
    return (f"POST /sandbox/inbound HTTP/1.1\r\nHost: 127.0.0.1\r\n{AUTH}"
            f"Content-Type: application/json\r\n{''.join(extra_headers)}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


CHUNKED_HEAD = (f"POST /sandbox/inbound HTTP/1.1\r\nHost: 127.0.0.1\r\n{AUTH}"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()

# (name, request, expected status): each refused by aiohttp's parser before routing.
MALFORMED = [
    ("bad request line", b"GARBAGE\r\n\r\n", 400),
    ("bad method", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("TLS on the HTTP port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40), 400),
    ("bad HTTP version", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    ("NUL in the path", b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("control byte in a header name", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A\x01: b\r\n\r\n",
     400),
    ("header line without a colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
    ("space in a header name", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400),
    ("folded header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", 400),
    ("bare LF line ends", b"GET /healthz HTTP/1.1\nHost: x\n\n", 400),
    ("header line over 8190 bytes",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ("secret in a header line over 8190 bytes",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-" + b"a" * 9000
     + b"\r\n\r\n", 431),
    ("URL over 8190 bytes", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
    ("200 header fields",
     b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
     431),
    ("Content-Length not a number",
     b"POST /sandbox/inbound HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    ("two Content-Lengths",
     b"POST /sandbox/inbound HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
     b"Content-Length: 3\r\n\r\n{}", 400),
    ("Content-Length and chunked",
     b"POST /sandbox/inbound HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("unknown Transfer-Encoding",
     b"POST /sandbox/inbound HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ("bad chunk size", CHUNKED_HEAD + b"zz\r\n{}\r\n0\r\n\r\n", 400),
    ("no Host", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
    ("two Hosts", b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    ("unknown Expect", b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n", 417),
    ("Expect not UTF-8", b"GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-c\xb3ntinue\r\n\r\n",
     417),
    ("Content-Encoding br", post_inbound("Content-Encoding: br\r\n"), 415),
    ("Content-Encoding zstd", post_inbound("Content-Encoding: zstd\r\n"), 415),
]


def test_malformed_requests_get_a_json_4xx_and_one_log_line_at_most(svc: Proc) -> None:
    for name, raw, status in MALFORMED:
        body = assert_json_error(exchange(svc.port, raw), status)
        assert "s3cret" not in body["error_message"], name
    # HTTP/0.9 has no status line to refuse with: it is routed (and not found).
    assert_json_error(exchange(svc.port, b"GET /nowhere\r\n\r\n"), 404)
    lines = log_between_start_and_stop(svc)
    assert_quiet(lines, len(MALFORMED) + 1)
    assert not any("s3cret" in line for line in lines)


def test_a_body_whose_framing_breaks_midway_is_answered_at_once(svc: Proc) -> None:
    # The route is already reading the body when the bad chunk arrives.
    broken_chunk = exchange(svc.port, CHUNKED_HEAD + b"2\r\n{\"\r\n", b"zz\r\nxx\r\n0\r\n\r\n")
    assert_json_error(broken_chunk, 400)
    overlong_chunk = exchange(svc.port, CHUNKED_HEAD + b"2\r\n{\"\r\n", b"2\r\nxxx\r\n0\r\n\r\n")
    assert_json_error(overlong_chunk, 400)
    assert_json_error(exchange(svc.port, post_inbound()), 400)  # and the service goes on
    lines = log_between_start_and_stop(svc)
    assert_quiet(lines, 3)
    assert "0 request(s) in flight" in svc.log.read_text()


def test_a_bogus_deflate_body_of_128_kib_is_answered_at_once(svc: Proc) -> None:
    # A deflate stream cut short: it never decodes to its end.
    bogus = zlib.compress(random.Random(7).randbytes(400_000))[:140_000]
    for path in ("/sandbox/inbound", "/v3/whatsapp/single/text/message/1",
                 "/admin/registrations/+34600000001/opt-out"):
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{AUTH}"
                "X-WM-CLIENT-ID: dev@acme.example\r\nX-WM-CLIENT-SECRET: acme-secret-change-me\r\n"
                "Content-Type: application/json\r\nContent-Encoding: deflate\r\n"
                f"Content-Length: {len(bogus)}\r\n\r\n").encode()
        assert assert_json_error(exchange(svc.port, head + bogus), 415)["error"] \
            == "unsupported_encoding"
    lines = log_between_start_and_stop(svc)
    assert_quiet(lines, 3)
    # Nothing was left in flight when the service stopped.
    assert "0 request(s) in flight" in svc.log.read_text()


def test_a_client_that_goes_away_midway_logs_no_traceback(svc: Proc) -> None:
    head = post_inbound(body=b"")[:-len(b"Content-Length: 0\r\n\r\n")]
    with socket.create_connection(("127.0.0.1", svc.port), timeout=PATIENCE) as sock:
        sock.sendall(head + b"Content-Length: 100\r\n\r\n{\"instance\"")
        time.sleep(0.3)  # the route is reading; the client goes away
    for _ in range(5):  # gone before the server could say 100 Continue
        with socket.create_connection(("127.0.0.1", svc.port), timeout=PATIENCE) as sock:
            sock.sendall(head + b"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n")
    assert_json_error(exchange(svc.port, post_inbound()), 400)  # still serving
    assert_quiet(log_between_start_and_stop(svc), 7)


def _mutate(rng: random.Random, head: bytes) -> bytes:
    data = bytearray(head)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data))
        match rng.randrange(6):
            case 0:
                data[at] = rng.randrange(256)
            case 1:
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            case 2:
                del data[at:at + rng.randint(1, 8)]
            case 3:
                data[at:at] = b"\r\n"
            case 4:
                data[at:at] = rng.choice([b":", b" ", b"\t", b"\x00", b"\x7f", b"\xff", b"%"])
            case _:
                data[at:at] = b"X" * rng.choice([100, 9000])
    return bytes(data)


def test_fuzzed_request_heads_never_get_a_5xx_or_a_traceback(svc: Proc) -> None:
    rng = random.Random(20261201)
    base = (f"POST /sandbox/inbound?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n{AUTH}"
            "Content-Type: application/json\r\nAccept: */*\r\n").encode()
    tail = f"Content-Length: {len(INBOUND_BODY)}\r\n\r\n".encode() + INBOUND_BODY
    count = 300
    answered = 0
    for _ in range(count):
        answer = exchange(svc.port, _mutate(rng, base) + tail)
        if answer is None:
            continue
        answered += 1
        assert answer.status < 500, (answer.status, answer.body[:300])
        if answer.status >= 400 and answer.body:
            assert_json_error(answer, answer.status)
    assert answered > count // 2
    assert_quiet(log_between_start_and_stop(svc), count)
