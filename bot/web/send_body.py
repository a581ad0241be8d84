"""A send's body, read the way WhatsMate clients write it, and shown so in
/openapi.json.

Lenient where real clients are sloppy (numbers in any common form, JSON
whatever the Content-Type or the same fields form-encoded, keys with stray
white space, `caption: null`), strict about everything else: each field is
checked here, and its schema below says the same in words.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from aiohttp import web

from bot.config import InstanceConfig
from bot.content import (
    MAX_CAPTION,
    MAX_DOCUMENT,
    MAX_IMAGE,
    MAX_TEXT,
    ContentError,
    Media,
    clean_filename,
    decode_document,
    decode_image,
    emojize,
)
from bot.numbers import to_e164, written_international
from bot.providers.base import Capabilities
from bot.userids import is_user_id
from bot.web.catalog import Error
from bot.web.errors import fail, parse_form_pairs, parse_json_object, read_body
from bot.web.multipart import MULTIPART, FilePart, parse_multipart

MAX_URL = 2048
MAX_GROUP_NAME = 200




FORM = "application/x-www-form-urlencoded"
# Form decoding reads '+' as a space. A client that does not percent-encode '+'
# (curl -d, a hand-built string) would lose it from base64, which the decoder
# would then skip as white space, and from a number's leading '+'. Neither can
# hold a space, so a space there was a '+'.
_BASE64_FIELDS = ("image", "document")
_NUMBER_FIELDS = ("number", "group_admin")


async def read_fields(request: web.Request) -> dict[str, Any]:
    """The body's fields: form-encoded or multipart when the Content-Type says
    so (unless the body is plainly JSON, as `curl -d '{...}'` sends), else JSON."""
    raw = await read_body(request, request.client_max_size)
    if request.content_type == MULTIPART:
        return _multipart_fields(parse_multipart(raw, request.headers["Content-Type"]))
    if request.content_type != FORM or raw.lstrip()[:1] in (b"{", b"[", b""):
        return fields_of(parse_json_object(raw).items())
    fields = fields_of(parse_form_pairs(raw))
    for name in _BASE64_FIELDS:
        if isinstance(value := fields.get(name), str):
            fields[name] = value.replace(" ", "+")
    for name in _NUMBER_FIELDS:
        if isinstance(value := fields.get(name), str) and value.startswith(" "):
            fields[name] = "+" + value.lstrip(" ")
    return fields


def _multipart_fields(pairs: list[tuple[str, str | FilePart]]) -> dict[str, Any]:
    """A file part is the image or document itself (its bytes, not base64);
    a document's file name is the part's unless a `filename` field says."""
    fields = fields_of(pairs)
    for name, value in fields.items():
        if isinstance(value, FilePart) and name not in _BASE64_FIELDS:
            fail(Error.INVALID_FIELD, f"{name} must be a plain field, not a file "
                 f"(curl -F '{name}=…', not -F '{name}=@file')")
    for name in _BASE64_FIELDS:
        if isinstance(part := fields.get(name), FilePart):
            fields[name] = part.data
            if part.filename and "filename" not in fields:
                fields["filename"] = part.filename
    return fields


def fields_of(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Keys as clients mean them: stray white space trimmed, case ignored."""
    fields: dict[str, Any] = {}
    for key, value in pairs:
        name = key.strip().lower()
        if name in fields:
            fail(Error.DUPLICATE_FIELD, f"field {name!r} is given twice")
        fields[name] = value
    return fields


def read_string(fields: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = fields.get(name)
    if value is None:
        if required:
            fail(Error.MISSING_FIELD, f"{name} is required")
        return None
    if not isinstance(value, str):
        fail(Error.INVALID_FIELD, f"{name} must be a string")
    return value


def _text(fields: dict[str, Any]) -> str:
    text = read_string(fields, "message") or ""
    if not text.strip():
        fail(Error.INVALID_FIELD, "message must not be empty")
    if len(text) > MAX_TEXT:
        fail(Error.TEXT_TOO_LONG, f"message is {len(text)} characters; the limit is {MAX_TEXT}")
    return emojize(text)


def _caption(fields: dict[str, Any]) -> str | None:
    caption = read_string(fields, "caption", required=False)
    if caption is None or not caption.strip():
        return None  # `caption: null` and "" both mean no caption
    if len(caption) > MAX_CAPTION:
        fail(Error.CAPTION_TOO_LONG,
             f"caption is {len(caption)} characters; the limit is {MAX_CAPTION}")
    return emojize(caption)


def _url(fields: dict[str, Any]) -> str:
    url = (read_string(fields, "url") or "").strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. "http://[::1" or "http://[zz]/": a bracketed host that is no IP
        host = None
    if (not host or parts.scheme.lower() not in ("http", "https")
            or any(c.isspace() for c in url) or len(url) > MAX_URL):
        fail(Error.INVALID_URL, "url must be an http:// or https:// address without spaces, "
             f"at most {MAX_URL} characters")
    return url


def read_media(fields: dict[str, Any], kind: str, instance: InstanceConfig,
           caps: Capabilities) -> Media:
    value = fields.get(kind)  # bytes from a multipart file part, else base64 text
    raw = value if isinstance(value, bytes) else read_string(fields, kind) or ""
    try:
        media = decode_image(raw) if kind == "image" else decode_document(raw)
    except ContentError as exc:
        fail(_MEDIA_ERRORS[exc.slug], exc.message)
    if kind == "image" and caps.image_types is not None and media.mime not in caps.image_types:
        fail(Error.UNSUPPORTED_IMAGE, f"instance {instance.id} sends through "
             f"{caps.image_refusal}")
    return media


def read_filename(fields: dict[str, Any]) -> str:
    try:
        return clean_filename(read_string(fields, "filename") or "")
    except ContentError as exc:
        fail(_FILENAME_ERRORS[exc.slug], exc.message)


class UnsureNumber(Exception):
    """A number typed without '+' or '00' that libphonenumber calls possible but
    not valid (a range its data has not caught up with, fiction's ranges): it is
    who the subscriber means only if someone registered with it on the instance,
    which the route asks the store (bot/web/send.py); else it lacks a country code."""

    def __init__(self, number: str, typed: object) -> None:
        super().__init__(number)
        self.number = number
        self.typed = typed


def lacks_country_code(raw: object) -> NoReturn:
    fail(Error.INVALID_DESTINATION, f"{str(raw)[:40]!r} lacks a country code: write the number "
         "in international form, country code first, like +34600000001")


def read_number(fields: dict[str, Any]) -> str:
    """E.164, or a provider's user id ("US.13491208655302741918") as given;
    UnsureNumber for a number typed without '+' that may only be a registered one."""
    raw = fields.get("number")
    if raw is None or raw == "":
        fail(Error.MISSING_FIELD, "number is required")
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        fail(Error.INVALID_FIELD, "number must be a string")
    if is_user_id(raw.strip() if isinstance(raw, str) else raw):
        return str(raw).strip()
    number = to_e164(raw, typed=True)
    if number is None and not written_international(raw):
        if (possible := to_e164(raw)) is not None:
            raise UnsureNumber(possible, raw)
        lacks_country_code(raw)
    if number is None:
        fail(Error.INVALID_DESTINATION, f"{str(raw)[:40]!r} is not a possible phone number with "
             "country code, like +34600000001")
    return number


def read_group(fields: dict[str, Any]) -> str:
    name = (read_string(fields, "group_name") or "").strip()
    if not name or len(name) > MAX_GROUP_NAME:
        fail(Error.INVALID_FIELD, f"group_name must be 1 to {MAX_GROUP_NAME} characters")
    # WhatsMate clients send the group admin's number; a group here is known by
    # its name on the instance, so it is only checked to be a possible number,
    # not used (libphonenumber's doubts about it must not refuse the send).
    admin = fields.get("group_admin")
    if admin not in (None, "") and (not isinstance(admin, str | int) or isinstance(admin, bool)
                                    or to_e164(admin) is None):
        fail(Error.INVALID_FIELD, "group_admin must be a phone number with country code")
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class Content:
    text: str | None = None
    caption: str | None = None
    filename: str | None = None
    media: Media | None = None


# One reader per kind, chosen when the route is made, so each route's code
# reaches only its own kind's checks (and tests/test_openapi_errors.py sees so).
ContentReader = Callable[[dict[str, Any], InstanceConfig, Capabilities], Content]


def _text_content(fields: dict[str, Any], instance: InstanceConfig,
                  caps: Capabilities) -> Content:
    return Content(text=_text(fields))


def _url_content(fields: dict[str, Any], instance: InstanceConfig,
                 caps: Capabilities) -> Content:
    return Content(text=_url(fields))


def _image_content(fields: dict[str, Any], instance: InstanceConfig,
                   caps: Capabilities) -> Content:
    caption = _caption(fields)
    return Content(caption=caption, media=read_media(fields, "image", instance, caps))


def _document_content(fields: dict[str, Any], instance: InstanceConfig,
                      caps: Capabilities) -> Content:
    caption = _caption(fields)
    filename = read_filename(fields)
    return Content(caption=caption, filename=filename,
                    media=read_media(fields, "document", instance, caps))


CONTENT_READERS: dict[str, ContentReader] = {
    "text": _text_content, "url": _url_content, "image": _image_content,
    "document": _document_content}

# What bot.content refuses media and filenames with, as catalog errors.
_MEDIA_ERRORS = {e.slug: e for e in (Error.BAD_BASE64, Error.EMPTY_MEDIA, Error.IMAGE_TOO_LARGE,
                                     Error.DOCUMENT_TOO_LARGE, Error.UNSUPPORTED_IMAGE,
                                     Error.UNSUPPORTED_DOCUMENT)}
_FILENAME_ERRORS = {Error.BAD_FILENAME.slug: Error.BAD_FILENAME}


def to_number(fields: dict[str, Any]) -> tuple[str | None, str | None]:
    return read_number(fields), None


def to_group(fields: dict[str, Any]) -> tuple[str | None, str | None]:
    return None, read_group(fields)



# ---- the body as /openapi.json shows it

_PROPERTIES: dict[str, dict[str, Any]] = {
    "number": {"type": ["string", "integer"],
               "examples": ["+34600000001", "34 600-000-001", "US.13491208655302741918"],
               "description": "Recipient, with country code; '+', '00', spaces and dashes "
                              "allowed. Digits without '+' or '00' must make a valid number "
                              "once '+' is put in front (else 471: the country code is "
                              "missing). Or the business-scoped user id of a user the "
                              "provider names without a number."},
    "message": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT,
                "description": "Text. Emoji shortcuts such as (y), :-) and <3 become emoji "
                               "as whole tokens."},
    "image": {"type": "string", "contentEncoding": "base64",
              "description": f"JPEG, PNG, WebP or GIF (JPEG/PNG on meta numbers), at most "
                             f"{MAX_IMAGE} bytes decoded; a data:...;base64, prefix is allowed."},
    "document": {"type": "string", "contentEncoding": "base64",
                 "description": f"A PDF, at most {MAX_DOCUMENT} bytes decoded; a "
                                "data:...;base64, prefix is allowed."},
    "filename": {"type": "string", "examples": ["invoice.pdf"],
                 "description": "Folders and control characters are removed; must end in "
                                ".pdf (appended when there is no extension)."},
    "caption": {"type": ["string", "null"], "maxLength": MAX_CAPTION},
    "url": {"type": "string", "format": "uri", "description": "http(s) URL, sent as text "
                                                                "with a link preview."},
    "group_name": {"type": "string", "description": "A group registered on the instance "
                                                    "(matched ignoring case and extra spaces)."},
    "group_admin": {"type": ["string", "integer", "null"],
                    "description": "Accepted for WhatsMate compatibility; must be a phone "
                                   "number when given; not used to find the group."},
}

_CONTENT = {"text": ["message"], "image": ["image", "caption"],
            "document": ["document", "filename", "caption"], "url": ["url"]}
_OPTIONAL = {"caption", "group_admin"}


def send_body(group: bool, kind: str) -> dict[str, Any]:
    names = ["group_name", "group_admin"] if group else ["number"]
    names += _CONTENT[kind]
    return {"type": "object", "properties": {n: _PROPERTIES[n] for n in names},
            "required": [n for n in names if n not in _OPTIONAL]}


def template_body() -> dict[str, Any]:
    """The template send's JSON body."""
    media = {"type": "string", "contentEncoding": "base64"}
    body = {"type": "object", "required": ["number", "template"], "properties": {
        "number": _PROPERTIES["number"],
        "template": {"type": "string", "examples": ["order_ready"],
                     "description": "A template configured under [[templates]] for this "
                                    "instance (and subscriber)"},
        "language": {"type": "string", "examples": ["es_MX"],
                     "description": "One of the template's configured language codes; by "
                                    "default the one for the user's registration locale"},
        "parameters": {"oneOf": [
            {"type": "array", "items": {"type": ["string", "number"]}},
            {"type": "object", "additionalProperties": {"type": ["string", "number"]}}],
            "description": "Body parameters: a list for {{1}}..{{n}}, an object for named "
                           "ones; exactly as many as configured"},
        "header": {"type": "object", "description": "The media of a template with a media "
                                                    "header",
                   "properties": {"image": media, "document": media,
                                  "filename": _PROPERTIES["filename"]}}}}
    return body
