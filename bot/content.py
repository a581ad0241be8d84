"""What subscribers send, made safe to queue: emoji shortcuts, base64 media,
file names. Pure functions; the send API maps `ContentError` to its status."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass

MAX_TEXT = 800
MAX_CAPTION = 250
MAX_IMAGE = 2 * 1024 * 1024  # decoded bytes (MiB: the generous reading of "2 MB")
MAX_DOCUMENT = 3 * 1024 * 1024
MAX_FILENAME = 200

# ---- emoji shortcuts

EMOJI_SHORTCUTS = {"(y)": "👍", "(n)": "👎", ":-)": "🙂", ":-(": "🙁", ":-p": "😛",
                   ":-P": "😛", ":-|": "😐", "<3": "❤️", "^_^": "😊"}

# A shortcut is a whole token: white space (or the text's edge) before it, and
# white space, the edge, or closing punctuation then white space/edge after it.
# So "ok (y)" and "see you :-)." convert; "http://a.b/x:-)", "word(y)" and
# "I<3u" do not.
_SHORTCUT = re.compile(
    r"(?<!\S)(" + "|".join(re.escape(s) for s in sorted(EMOJI_SHORTCUTS, key=len, reverse=True))
    + r")(?=$|\s|[.,!?;:]+(?:$|\s))")


def emojize(text: str) -> str:
    """Turn the emoji shortcuts (docs/send-api.md) into emoji, as whole tokens only."""
    return _SHORTCUT.sub(lambda m: EMOJI_SHORTCUTS[m.group(1)], text)


# ---- media


class ContentError(ValueError):
    """Content the API refuses: `status` and `slug` say how to answer."""

    def __init__(self, status: int, slug: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.slug = slug
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    data: bytes
    mime: str


_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.I)
_WHITESPACE = re.compile(r"\s+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def decode_base64(field: str, raw: str, limit: int) -> bytes:
    """Base64 as real clients send it: with or without a `data:...;base64,`
    prefix, wrapped in lines (MIME style), URL-safe alphabet, padding optional.
    Anything else is 400; the size limit applies to the decoded bytes (413)."""
    text = _DATA_URL.sub("", raw.strip(), count=1)
    text = _WHITESPACE.sub("", text).replace("-", "+").replace("_", "/")
    if len(text) % 4 == 1 or not _BASE64.fullmatch(text):
        raise ContentError(400, "bad_base64", f"{field} is not valid base64")
    # Refuse what is too large before decoding it: 4 characters carry 3 bytes.
    if len(text) // 4 * 3 - 3 > limit:
        raise _too_large(field, limit, len(text) // 4 * 3, decoded=True)
    try:
        data = base64.b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4),
                                validate=True)
    except (binascii.Error, ValueError):
        raise ContentError(400, "bad_base64", f"{field} is not valid base64") from None
    return _sized(field, data, limit, decoded=True)


def _sized(field: str, data: bytes, limit: int, *, decoded: bool = False) -> bytes:
    """The media's bytes, refused when empty or over `limit`."""
    if not data:
        raise ContentError(470, "empty_media", f"{field} is empty")
    if len(data) > limit:
        raise _too_large(field, limit, len(data), decoded=decoded)
    return data


def _too_large(field: str, limit: int, size: int, *, decoded: bool = False) -> ContentError:
    mib = 1024 * 1024
    return ContentError(413, f"{field}_too_large", f"{field} is {size / mib:.1f} MB"
                        f"{' once decoded' if decoded else ''}; the limit is {limit // mib} MB")


def _media_bytes(field: str, raw: str | bytes, limit: int) -> bytes:
    """The bytes as sent (a multipart file part), or decoded from base64."""
    return _sized(field, raw, limit) if isinstance(raw, bytes) else decode_base64(
        field, raw, limit)


# Images are recognised by their first bytes, never by what the client claims.
_IMAGE_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def sniff_image(data: bytes) -> str | None:
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_image(raw: str | bytes) -> Media:
    data = _media_bytes("image", raw, MAX_IMAGE)
    mime = sniff_image(data)
    if mime is None:
        raise ContentError(400, "unsupported_image",
                           "image must be a JPEG, PNG, WebP or GIF file")
    return Media(data=data, mime=mime)


def decode_document(raw: str | bytes) -> Media:
    data = _media_bytes("document", raw, MAX_DOCUMENT)
    # Documents are PDFs. Acrobat tolerates up to 1 KB before the header.
    if b"%PDF-" not in data[:1024]:
        raise ContentError(400, "unsupported_document", "document must be a PDF file")
    return Media(data=data, mime="application/pdf")


# ---- file names

_UNSAFE = re.compile(r'[<>:"|?*]')
_SPACES = re.compile(r"\s+")


def clean_filename(raw: str) -> str:
    """A document's file name, safe to show and to store: no folders, no control
    or reserved characters, ending in `.pdf` (appended when there is no
    extension at all; any other extension is refused)."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(" " if unicodedata.category(c).startswith("C") else c
                   for c in unicodedata.normalize("NFC", name))
    name = _SPACES.sub(" ", _UNSAFE.sub("_", name)).strip().lstrip(".").strip()
    if "." not in name and name:
        name += ".pdf"
    stem, _, ext = name.rpartition(".")
    if not stem.strip() or ext.lower() != "pdf":
        raise ContentError(400, "bad_filename",
                           "filename must be a file name ending in .pdf, like invoice.pdf")
    if len(name) > MAX_FILENAME:
        raise ContentError(400, "bad_filename",
                           f"filename is over {MAX_FILENAME} characters")
    return name
