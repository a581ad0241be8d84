"""multipart/form-data bodies, as `curl -F number=… -F image=@photo.png`
sends them: plain fields as text, file parts as their bytes and file name.

The body is read whole first (under the app's size limit), so a part is cut
from it exactly, binary included; aiohttp parses the header parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from aiohttp.helpers import parse_mimetype
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from bot.web.catalog import Error
from bot.web.errors import MAX_FORM_FIELDS, fail

MULTIPART = "multipart/form-data"


@dataclass(frozen=True, slots=True)
class FilePart:
    """A part sent as a file (`-F image=@x.png`): its bytes, and its name."""

    data: bytes
    filename: str | None


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, str | FilePart]]:
    """The parts as (name, value) pairs in order: text for a plain field (UTF-8),
    a FilePart for a file. A repeated name is kept, for the caller to refuse."""
    boundary = parse_mimetype(content_type).parameters.get("boundary", "")
    if not boundary or len(boundary) > 200:
        _malformed("its Content-Type has no boundary")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        _malformed("it does not end with the closing boundary")
    if len(chunks) - 2 > MAX_FORM_FIELDS:
        fail(Error.MALFORMED_MULTIPART, f"the multipart body has more than "
             f"{MAX_FORM_FIELDS} parts")
    return [_part(chunk) for chunk in chunks[1:-1]]


def _part(chunk: bytes) -> tuple[str, str | FilePart]:
    if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
        _malformed("a part is not framed by CRLF")
    head, found, data = chunk[2:-2].partition(b"\r\n\r\n")
    if not found:
        head, data = chunk[2:-2].removesuffix(b"\r\n"), b""  # a part with no body
    try:
        lines = head.decode().split("\r\n")
    except UnicodeDecodeError:
        _malformed("a part's headers are not UTF-8")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            _malformed("a part has a header line without a colon")
        headers[name.strip().lower()] = value.strip()
    kind, params = parse_content_disposition(headers.get("content-disposition"))
    field = params.get("name")
    if kind != "form-data" or not field:
        _malformed('a part has no Content-Disposition: form-data; name="…"')
    if "filename" in params or "filename*" in params:
        return field, FilePart(data, content_disposition_filename(params, "filename"))
    if b"\x00" in data:
        fail(Error.INVALID_TEXT, f"field {field!r} holds a NUL character")
    try:
        return field, data.decode()
    except UnicodeDecodeError:
        fail(Error.MALFORMED_MULTIPART, f"field {field!r} is not UTF-8 text; send a file "
             "as a file part (curl -F name=@file)")


def _malformed(why: str) -> NoReturn:
    fail(Error.MALFORMED_MULTIPART, f"the multipart/form-data body is malformed: {why}")
