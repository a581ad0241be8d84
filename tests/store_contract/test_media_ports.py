"""The media port on every backend: the fetch queued with its message, claimed
under a lease, finished once, the deliveries waiting for it released, the
file read back, purged past its expiry; the service's own secret."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from typing import NamedTuple

import asyncpg

from bot.effects import DeliveryDraft, Effects, MediaDraft
from bot.events import InboundMessage, MediaRef
from bot.kinds import MessageKind
from bot.store import Store
from bot.store.models import MediaResult
from tests.store_contract.conftest import Backend

T0 = time.time()


def photo(msg_id: str, *, expires_at: float = T0 + 3600) -> Effects:
    msg = InboundMessage(provider="meta", provider_message_id=msg_id, instance_id=1,
                         sender="+34600000001", kind=MessageKind.IMAGE, text="receipt",
                         timestamp=T0, media=MediaRef(id="MID" + msg_id, mime_type="image/jpeg"))
    media = MediaDraft(id=f"m{msg_id:0>32}", provider="meta", instance_id=1, kind="image",
                       provider_media_id="MID" + msg_id, source_url=None,
                       mime_type="image/jpeg", filename=None, expires_at=expires_at)
    held = DeliveryDraft(id=f"d{msg_id}", subscriber_id="acme", endpoint_key="main",
                         url="https://hooks.example/acme", format="standard",
                         event_type="message.received", payload="{}", media_id=media.id,
                         not_before=T0 + 60)
    return Effects(inbound=msg, deliveries=[held], media=media)


async def test_a_file_is_queued_with_its_message_fetched_once_and_releases_its_delivery(
        store: Store) -> None:
    effects = photo("1")
    assert effects.media is not None
    assert await store.commit_inbound(effects, T0)
    assert not await store.commit_inbound(photo("1"), T0)  # a redelivery queues nothing more
    # The delivery waits for the file: not due before not_before.
    assert await store.claim_deliveries(T0 + 1, 10, 30.0) == []
    jobs = await store.claim_media(T0, 10, 30.0, "w1")
    assert [(j.id, j.provider_media_id, j.kind, j.attempts) for j in jobs] == [
        (effects.media.id, "MID1", "image", 0)]
    assert await store.claim_media(T0, 10, 30.0, "w2") == []  # leased
    content = b"\xff\xd8 a jpeg"
    digest = hashlib.sha256(content).hexdigest()
    released = await store.finish_media(effects.media.id, MediaResult(
        content=content, sha256=digest, mime_type="image/jpeg"), T0 + 2)
    assert released == 1
    rows = await store.claim_deliveries(T0 + 2, 10, 30.0)
    assert [r.id for r in rows] == ["d1"]
    info = await store.media_info(effects.media.id)
    assert info is not None and (info.status, info.size, info.sha256) == (
        "ready", len(content), digest)
    found = await store.media_content(effects.media.id)
    assert found is not None and found[1] == content
    assert await store.claim_media(T0 + 100, 10, 30.0, "w1") == []  # fetched once


async def test_a_failed_fetch_is_retried_then_failed_and_still_releases(store: Store) -> None:
    effects = photo("2")
    assert effects.media is not None
    await store.commit_inbound(effects, T0)
    [job] = await store.claim_media(T0, 10, 30.0, "w1")
    assert await store.finish_media(job.id, MediaResult(error="HTTP 503", retry_at=T0 + 5),
                                    T0 + 1) == 0
    assert await store.claim_media(T0 + 4, 10, 30.0, "w1") == []
    [again] = await store.claim_media(T0 + 5, 10, 30.0, "w1")
    assert again.attempts == 1
    assert await store.finish_media(job.id, MediaResult(error="too big"), T0 + 6) == 1
    info = await store.media_info(job.id)
    assert info is not None and (info.status, info.error) == ("failed", "too big")
    assert await store.media_content(job.id) is None


async def test_claims_of_a_killed_run_come_back_at_start(store: Store) -> None:
    effects = photo("3")
    await store.commit_inbound(effects, T0)
    assert len(await store.claim_media(time.time(), 10, 3600.0, store.worker_id)) == 1
    assert await store.claim_media(time.time(), 10, 3600.0, "other") == []
    assert await store.release_media_claims(
        None if store.single_process else store.worker_id) == 1
    assert len(await store.claim_media(time.time(), 10, 30.0, "other")) == 1


async def test_files_past_their_expiry_are_deleted(store: Store) -> None:
    old, new = photo("4", expires_at=T0 - 1), photo("5", expires_at=T0 + 3600)
    assert old.media is not None and new.media is not None
    await store.commit_inbound(old, T0 - 100)
    await store.commit_inbound(new, T0)
    assert await store.purge_media(T0) == 1
    assert await store.media_info(old.media.id) is None
    assert await store.media_info(new.media.id) is not None


async def test_the_service_secret_is_made_once_and_kept(store: Store) -> None:
    key = await store.server_key("media_links")
    assert len(key) == 32
    assert await store.server_key("media_links") == key
    assert await store.server_key("other") != key



def _file(n: int) -> bytes:
    """A photo's bytes, each its own size, with what a careless encoding would
    change: NULs, bytes past ASCII, a backslash, quotes."""
    return b"\xff\xd8\xff\xe0\x00JFIF\\'\"" + bytes([n % 256]) * (1000 * n) + bytes(range(256))


class Ending(NamedTuple):
    """A photo committed with its held delivery, and how its fetch ends."""

    media_id: str
    delivery_id: str
    result: MediaResult


async def photos(store: Store, first: int, count: int) -> list[Ending]:
    """`count` photos committed; most fetched, one failed for good (the 4th),
    one to be tried again (the 6th)."""
    ends = []
    for n in range(count):
        effects = photo(str(first + n))
        assert effects.media is not None and await store.commit_inbound(effects, T0)
        content = _file(first + n)
        ends.append(Ending(effects.media.id, effects.deliveries[0].id, (
            MediaResult(error="HTTP 404") if n == 3
            else MediaResult(error="HTTP 503", retry_at=T0 + 5) if n == 5
            else MediaResult(content=content, sha256=hashlib.sha256(content).hexdigest(),
                             mime_type="image/jpeg"))))
    return ends


async def each_ended_once(store: Store, ends: list[Ending], released: list[int]) -> None:
    """Each file stored as its end said, byte for byte; each final end released
    its own delivery, once."""
    for end, count in zip(ends, released, strict=True):
        info = await store.media_info(end.media_id)
        found = await store.media_content(end.media_id)
        assert info is not None
        if end.result.content is not None:
            assert (info.status, info.size, info.sha256, info.error) == (
                "ready", len(end.result.content), end.result.sha256, None)
            assert found is not None and found[1] == end.result.content
        else:
            assert (info.status, info.error) == (
                "failed" if end.result.retry_at is None else "pending", end.result.error)
            assert found is None
        assert count == (0 if end.result.retry_at is not None else 1)
    due = await store.claim_deliveries(T0 + 3, 100, 30.0)
    assert sorted(r.id for r in due) == sorted(
        end.delivery_id for end in ends if end.result.retry_at is None)
    assert await store.claim_deliveries(T0 + 3, 100, 30.0) == []


async def test_photos_fetched_at_once_each_end_as_alone(store: Store) -> None:
    # The media worker ends several fetches at once: each file is kept byte
    # for byte, a failed one fails alone, and each delivery is released once.
    ends = await photos(store, 100, 12)
    assert len(await store.claim_media(T0, 20, 30.0, "w1")) == 12
    released = await asyncio.gather(*(store.finish_media(e.media_id, e.result, T0 + 2)
                                      for e in ends))
    await each_ended_once(store, ends, released)
    [again] = await store.claim_media(T0 + 5, 20, 30.0, "w1")  # the one tried again
    assert again.id == ends[5].media_id and again.attempts == 1


async def test_on_postgres_an_end_that_cannot_be_written_fails_alone(
        postgres: Backend) -> None:
    # A NUL cannot be stored in PostgreSQL's text: that end's write fails, and
    # only its caller hears of it; the others land as if written alone.
    store = await postgres.open()
    try:
        ends = await photos(store, 200, 8)
        await store.claim_media(T0, 20, 30.0, "w1")
        bad = ends[3]._replace(result=MediaResult(error="HTTP 404 \0"))
        answers = await asyncio.gather(*(store.finish_media(e.media_id, e.result, T0 + 2)
                                         for e in [*ends[:3], bad, *ends[4:]]),
                                       return_exceptions=True)
        assert isinstance(answers[3], asyncpg.PostgresError)
        info = await store.media_info(bad.media_id)
        assert info is not None and (info.status, info.error) == ("pending", None)
        await each_ended_once(store, ends[:3] + ends[4:], answers[:3] + answers[4:])
    finally:
        await store.close()


async def test_on_postgres_photos_arriving_together_queue_each_fetch_once(
        postgres: Backend) -> None:
    # Messages whose chats were read together are written together (one
    # statement), files and all; a redelivery of the batch queues nothing more.
    store = await postgres.open()
    try:
        senders = [f"+3467300{n:04d}" for n in range(6)]
        sent = [dataclasses.replace(e, inbound=dataclasses.replace(e.inbound, sender=sender))
                for e, sender in zip((photo(str(400 + n)) for n in range(6)), senders,
                                     strict=True)]
        for at in (T0, T0 + 1):
            await asyncio.gather(*(store.load_inbound_context(1, s, None) for s in senders))
            assert await asyncio.gather(*(store.commit_inbound(e, at) for e in sent)) == [
                at == T0] * 6
        xmins = await store._pool.fetch("SELECT count(*) FROM inbound_media GROUP BY xmin::text")
        assert [n for (n,) in xmins] == [6]
        jobs = await store.claim_media(T0, 20, 30.0, "w1")
        assert sorted((j.id, j.provider_media_id, j.kind, j.mime_type, j.attempts)
                      for j in jobs) == sorted(
            (e.media.id, e.media.provider_media_id, "image", "image/jpeg", 0)
            for e in sent if e.media is not None)
        assert await store.claim_deliveries(T0 + 1, 10, 30.0) == []  # held for their files
        info = await store.media_info(jobs[0].id)
        assert info is not None and (info.status, info.expires_at) == ("pending", T0 + 3600)
    finally:
        await store.close()
