"""Content rules as pure functions: emoji shortcuts, base64, images, file names."""

from __future__ import annotations

import base64

import pytest

from bot.content import (
    ContentError,
    clean_filename,
    decode_base64,
    decode_document,
    emojize,
    sniff_image,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("(y)", "👍"), ("(n)", "👎"), (":-)", "🙂"), (":-(", "🙁"), (":-p", "😛"), (":-P", "😛"),
    (":-|", "😐"), ("<3", "❤️"), ("^_^", "😊"),
    ("ok (y) thanks :-)", "ok 👍 thanks 🙂"),
    ("see you :-).", "see you 🙂."),
    ("I <3 it!", "I ❤️ it!"),
    ("line\n(y)\n", "line\n👍\n"),
    ("http://x.example/a:-)b", "http://x.example/a:-)b"),
    ("https://x.example/(y)", "https://x.example/(y)"),
    ("http://x.example/:-p", "http://x.example/:-p"),
    ("word(y)", "word(y)"), ("(y)word", "(y)word"), ("I<3u", "I<3u"), ("<3<3", "<3<3"),
    ("^_^_^", "^_^_^"), ("(Y)", "(Y)"), (":-)):", ":-)):"),
])
def test_emoji_shortcuts_as_whole_tokens(text: str, expected: str) -> None:
    assert emojize(text) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("invoice.pdf", "invoice.pdf"), ("Invoice 2026.PDF", "Invoice 2026.PDF"),
    ("invoice", "invoice.pdf"), ("../../etc/passwd", "passwd.pdf"),
    ("C:\\Users\\ana\\cv.pdf", "cv.pdf"), ("a\x00b\x1f.pdf", "a b .pdf"),
    ("  spaced   name .pdf ", "spaced name .pdf"), ('what?"*<>|.pdf', "what______.pdf"),
    (".hidden.pdf", "hidden.pdf"), ("résumé.pdf", "résumé.pdf"),
])
def test_clean_filename(raw: str, expected: str) -> None:
    assert clean_filename(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "a.exe", "x.pdf.exe", "/", ".pdf.", "a" * 250 + ".pdf",
                                 "report.docx"])
def test_bad_filename(raw: str) -> None:
    with pytest.raises(ContentError) as info:
        clean_filename(raw)
    assert info.value.status == 400 and info.value.slug == "bad_filename"


def test_decode_base64_forms_and_limits() -> None:
    data = bytes(range(256)) * 3
    plain = base64.b64encode(data).decode()
    for raw in (plain, base64.encodebytes(data).decode(), f"data:image/png;base64,{plain}",
                f"DATA:application/pdf;name=x.pdf;base64,{plain}",
                base64.urlsafe_b64encode(data).decode().rstrip("="), f"  {plain}\n"):
        assert decode_base64("image", raw, 10_000) == data
    with pytest.raises(ContentError) as info:
        decode_base64("image", plain, len(data) - 1)
    assert (info.value.status, info.value.slug) == (413, "image_too_large")
    # The refusal gives the size it refused, beside the limit.
    big = base64.b64encode(bytes(int(2.6 * 1024 * 1024))).decode()
    with pytest.raises(ContentError) as info:
        decode_base64("image", big, 2 * 1024 * 1024)
    assert info.value.message == "image is 2.6 MB once decoded; the limit is 2 MB"
    with pytest.raises(ContentError) as info:
        decode_base64("document", "", 10)
    assert (info.value.status, info.value.slug) == (470, "empty_media")
    for bad in ("abc$", "QQ==QQ==", "Q", "data:;base64,%%%"):
        with pytest.raises(ContentError) as info:
            decode_base64("image", bad, 10_000)
        assert (info.value.status, info.value.slug) == (400, "bad_base64")


def test_sniff_and_pdf() -> None:
    assert sniff_image(b"\xff\xd8\xff\xdb") == "image/jpeg"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image(b"%PDF-1.4") is None
    assert decode_document(base64.b64encode(b"%PDF-1.7 x").decode()).mime == "application/pdf"
    with pytest.raises(ContentError):
        decode_document(base64.b64encode(b"PK\x03\x04 a zip").decode())
