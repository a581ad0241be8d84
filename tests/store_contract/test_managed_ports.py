"""The `Managed` port on each backend: a change is all or nothing with its
audit row and the version's bump; a load reads what is in force."""

from __future__ import annotations

import pytest

from bot.services.managed import build_managed
from bot.store import Store
from bot.store.models import AuditEntry, NewSubscriber
from bot.store.protocol import Conflict

T0 = 1_800_000_000.0
BY_ADMIN = AuditEntry(actor="admin", action="test", target="zeta", address="10.0.0.1",
                      details={"why": "a test"})


def new(sub_id: str = "zeta", keyword: str | None = "Zeta", client_id: str = "wg_1"
        ) -> NewSubscriber:
    return NewSubscriber(id=sub_id, client_id=client_id, plan="trial", since="2026-01-01",
                         expires=None, instances=(1, 2), keyword=keyword, email="a@b.example",
                         name="Zeta")


async def test_a_change_writes_its_audit_row_and_bumps_the_version(store: Store) -> None:
    assert await store.managed_version() == 0
    assert await store.create_subscriber(new(), b"a" * 32, BY_ADMIN, T0)
    assert await store.managed_version() == 1
    loaded = build_managed(await store.load_managed(T0))
    sub = loaded.subscribers["zeta"]
    assert (sub.secret_sha256, sub.instances, sub.keyword, sub.since.isoformat()) == (
        b"a" * 32, (1, 2), "Zeta", "2026-01-01")
    (entry,) = await store.list_audit()
    assert (entry.actor, entry.address, entry.target, entry.details) == (
        "admin", "10.0.0.1", "zeta", {"why": "a test"})


async def test_a_refused_change_leaves_nothing(store: Store) -> None:
    assert await store.create_subscriber(new(), b"a" * 32, BY_ADMIN, T0)
    # The id was used; an update or rotation of no live subscriber; a keyword taken.
    assert not await store.create_subscriber(new(client_id="wg_2"), b"b" * 32, BY_ADMIN, T0)
    assert not await store.update_subscriber("nobody", {"plan": "x"}, BY_ADMIN, T0)
    assert not await store.add_secret("nobody", b"c" * 32, T0, BY_ADMIN, T0)
    with pytest.raises(Conflict):
        await store.create_subscriber(new("other", keyword="ZETA", client_id="wg_3"),
                                      b"d" * 32, BY_ADMIN, T0)
    assert await store.managed_version() == 1 and len(await store.list_audit()) == 1
    rows = await store.load_managed(T0)
    assert [r[0] for r in rows.subscribers] == ["zeta"] and len(rows.secrets) == 1
    # Deleted: gone from the load, its secrets too, its id still taken.
    assert await store.delete_subscriber("zeta", BY_ADMIN, T0)
    assert not await store.delete_subscriber("zeta", BY_ADMIN, T0)
    rows = await store.load_managed(T0)
    assert rows.subscribers == [] and rows.secrets == []
    assert not await store.create_subscriber(new(client_id="wg_4"), b"e" * 32, BY_ADMIN, T0)


async def test_rotations_overlap_and_end(store: Store) -> None:
    await store.create_subscriber(new(), b"a" * 32, BY_ADMIN, T0)
    assert await store.add_secret("zeta", b"b" * 32, T0 + 3600, BY_ADMIN, T0)
    sub = build_managed(await store.load_managed(T0)).subscribers["zeta"]
    assert sub.secret_sha256 == b"b" * 32
    assert [(s.sha256, s.expires_at) for s in sub.older_secrets] == [(b"a" * 32, T0 + 3600)]
    assert len((await store.load_managed(T0 + 3600)).secrets) == 1  # ended by then
    # Overlap 0: every earlier secret ends now.
    assert await store.add_secret("zeta", b"c" * 32, T0 + 10, BY_ADMIN, T0 + 10)
    sub = build_managed(await store.load_managed(T0 + 10)).subscribers["zeta"]
    assert (sub.secret_sha256, sub.older_secrets) == (b"c" * 32, ())
    # A provisioned subscriber: its file digest carried for the overlap at the first rotation.
    assert await store.add_secret("acme", b"n" * 32, T0 + 60, BY_ADMIN, T0,
                                  previous=b"f" * 32)
    override = build_managed(await store.load_managed(T0)).provisioned["acme"]
    assert override.secret_sha256 == b"n" * 32
    assert [s.sha256 for s in override.older_secrets] == [b"f" * 32]
    assert await store.add_secret("acme", b"m" * 32, T0 + 60, BY_ADMIN, T0,
                                  previous=b"f" * 32)
    override = build_managed(await store.load_managed(T0)).provisioned["acme"]
    assert [s.sha256 for s in override.older_secrets] == [b"f" * 32, b"n" * 32]
