"""Inbound media's ids and signed links (docs/receiving.md, "Media").

A file a user sent is kept under an id of ours, derived from the message it
came with (a provider's redelivery names the same file). Its link is
`{public_url}/media/{id}?exp=...&sig=...`: HMAC-SHA256 over the id and the
expiry, keyed by a secret the store generates once, so the link itself is the
credential and lives no longer than the file.
"""

from __future__ import annotations

import hashlib
import hmac
import re

# Ours only: 'm' and 32 hex digits (the outbound media Twilio fetches have UUIDs).
MEDIA_ID = re.compile(r"m[0-9a-f]{32}")
KEY_NAME = "media_links"  # the store's name for the links' secret


def media_id_for(provider: str, provider_message_id: str) -> str:
    digest = hashlib.sha256(f"{provider}:{provider_message_id}".encode()).hexdigest()
    return "m" + digest[:32]


def link_signature(key: bytes, media_id: str, expires: int) -> str:
    return hmac.new(key, f"{media_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def signed_link(base_url: str, key: bytes, media_id: str, expires: int) -> str:
    return (f"{base_url}/media/{media_id}?exp={expires}"
            f"&sig={link_signature(key, media_id, expires)}")


def link_is_genuine(key: bytes, media_id: str, exp: str, sig: str) -> bool:
    """The signature matches (compared in constant time); the expiry is checked apart."""
    if not (exp.isascii() and exp.isdigit() and len(exp) <= 12):
        return False
    expected = link_signature(key, media_id, int(exp))
    return hmac.compare_digest(expected.encode(), sig.encode("utf-8", "surrogateescape"))
