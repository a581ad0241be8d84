"""The crash suite for subscribers managed at runtime: the real service
(`python -m bot serve`, SQLite) takes a stream of admin changes from several
clients at once (create, change, suspend, resume, new secrets, delete) and is
SIGKILLed at random moments, then started again on the same store.

Judged after the last restart:
- nothing acknowledged is lost: each subscriber whose creation was answered
  201 exists (unless its deletion was answered), each acknowledged deletion
  answers 404, and the newest acknowledged secret of each live one
  authenticates (rotations overlap an hour, so a rotation committed but never
  answered leaves it working; a deletion never answered may or may not have
  committed, so its subscriber is not judged);
- nothing is half-applied: in the store, the managed version equals the
  count of change rows in the audit log (both are written by every change, in
  its transaction), each subscriber has exactly one `subscriber.created`
  entry, a live one exactly one secret without an end plus one per rotation,
  a deleted one none.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from reliability.common import Row
from reliability.service import ADMIN, Service

SUITE = "crash_managed"
CLIENTS = 4  # admin clients changing subscribers at once


@dataclass(frozen=True, slots=True)
class Form:
    kills: int
    uptime: tuple[float, float]  # seconds between kills (uniform)


FULL = Form(kills=12, uptime=(0.5, 2.5))
SMALL = Form(kills=3, uptime=(0.5, 1.5))


@dataclass
class Acknowledged:
    """What the service answered 2xx for."""

    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> credentials
    deleted: set[str] = field(default_factory=set)
    answered: Counter[str] = field(default_factory=Counter)  # action -> answers
    unanswered: int = 0  # requests cut by a kill (their outcome unknown, and allowed either way)
    # Deletions cut off: committed or not, either way is right.
    maybe_deleted: set[str] = field(default_factory=set)


async def change(session: aiohttp.ClientSession, base: str, seen: Acknowledged,
                 rng: random.Random, counter: list[int]) -> None:
    """One admin change, chosen at random among what makes sense now."""
    live = sorted(set(seen.secrets) - seen.deleted)
    action = "create" if not live or rng.random() < 0.35 else rng.choice(
        ("rotate", "rotate", "patch", "suspend", "resume", "delete"))
    if action == "create":
        counter[0] += 1
        sub_id = f"c{counter[0]}"
        method, path, body = "POST", "/admin/subscribers", {
            "id": sub_id, "plan": "bench", "instances": [1], "email": f"{sub_id}@x.example"}
    else:
        sub_id = rng.choice(live)
        method, path, body = {
            "rotate": ("POST", f"/admin/subscribers/{sub_id}/secrets", {"overlap_hours": 1}),
            "patch": ("PATCH", f"/admin/subscribers/{sub_id}", {"name": f"n{rng.random()}"}),
            "suspend": ("POST", f"/admin/subscribers/{sub_id}/suspend", None),
            "resume": ("POST", f"/admin/subscribers/{sub_id}/resume", None),
            "delete": ("DELETE", f"/admin/subscribers/{sub_id}", None)}[action]
    try:
        async with session.request(method, base + path, json=body, headers=ADMIN) as resp:
            data: Any = await resp.json(content_type=None)
            status = resp.status
    except (TimeoutError, aiohttp.ClientError):
        seen.unanswered += 1
        if action == "delete":
            seen.maybe_deleted.add(sub_id)
        return
    if status >= 300:
        return  # e.g. a change to one deleted meanwhile (404): nothing to remember
    seen.answered[action] += 1
    if action in ("create", "rotate"):
        seen.secrets[sub_id] = (data["client_id"], data["secret"])
    elif action == "delete":
        seen.deleted.add(sub_id)


async def load(base: str, seen: Acknowledged, until: float, seed: int,
               counter: list[int]) -> None:
    rng = random.Random(seed)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < until:
            await change(session, base, seen, rng, counter)


def store_checks(db: Path) -> list[str]:
    """What would be half-applied, read from the store as it was left."""
    problems = []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        version = conn.execute("SELECT version FROM managed_version").fetchone()[0]
        changes = conn.execute("SELECT COUNT(*) FROM audit_log WHERE actor != 'config'"
                               ).fetchone()[0]
        if version != changes:
            problems.append(f"managed version {version} but {changes} changes audited")
        subs = {r[0]: r[1] for r in conn.execute(
            "SELECT id, deleted_at FROM managed_subscribers")}
        created = Counter(r[0] for r in conn.execute(
            "SELECT target FROM audit_log WHERE action = 'subscriber.created'"))
        rotated = Counter(r[0] for r in conn.execute(
            "SELECT target FROM audit_log WHERE action = 'secret.rotated'"))
        current = Counter(r[0] for r in conn.execute(
            "SELECT subscriber_id FROM subscriber_secrets WHERE expires_at IS NULL"))
        held = Counter(r[0] for r in conn.execute("SELECT subscriber_id FROM subscriber_secrets"))
    for sub_id, deleted_at in subs.items():
        if created[sub_id] != 1:
            problems.append(f"{sub_id}: {created[sub_id]} creations audited")
        if deleted_at is None and (current[sub_id], held[sub_id]) != (1, 1 + rotated[sub_id]):
            problems.append(f"{sub_id}: {current[sub_id]} current secrets, {held[sub_id]} held, "
                            f"{rotated[sub_id]} rotations audited")
        if deleted_at is not None and held[sub_id]:
            problems.append(f"{sub_id}: deleted, yet {held[sub_id]} secrets held")
    problems += [f"{target}: audited, no row" for target in created if target not in subs]
    return problems


async def api_checks(service: Service, seen: Acknowledged) -> list[str]:
    problems = []
    base = service.url("wagate")
    async with aiohttp.ClientSession() as session:
        for sub_id, (client_id, secret) in seen.secrets.items():
            if sub_id in seen.maybe_deleted - seen.deleted:
                continue
            async with session.get(f"{base}/admin/subscribers/{sub_id}", headers=ADMIN) as resp:
                exists = resp.status == 200
            if exists == (sub_id in seen.deleted):
                problems.append(f"{sub_id}: {'still there' if exists else 'lost'}")
            if sub_id in seen.deleted:
                continue
            async with session.get(f"{base}/v3/account", headers={
                    "X-WM-CLIENT-ID": client_id, "X-WM-CLIENT-SECRET": secret}) as resp:
                if resp.status != 200:
                    problems.append(f"{sub_id}: its acknowledged secret answers {resp.status}")
    return problems


async def run(small: bool, workdir: Path) -> list[Row]:
    form = SMALL if small else FULL
    service = Service(tmp=workdir, quick=small)
    seen, counter = Acknowledged(), [0]
    rng = random.Random(25)
    service.start_all()
    try:
        for kill in range(form.kills + 1):
            until = time.monotonic() + rng.uniform(*form.uptime)
            base = service.url("wagate")
            loads = [asyncio.create_task(load(base, seen, until, kill * CLIENTS + n, counter))
                     for n in range(CLIENTS)]
            await asyncio.sleep(max(0.0, until - time.monotonic()))
            if kill < form.kills:
                service.stop("wagate", signal.SIGKILL)  # mid-change: requests in flight
            await asyncio.gather(*loads)
            if kill < form.kills:
                service.start_wagate(rate=1000.0)
        lost = await api_checks(service, seen)
    finally:
        service.stop_all()
    half = store_checks(workdir / "wagate.db")
    changes = sum(seen.answered.values())
    return [
        Row(suite=SUITE, measure="changes acknowledged (kills)",
            figure=f"{changes} ({form.kills} SIGKILLs, {seen.unanswered} cut off)",
            target="> 0", met=changes > 0),
        Row(suite=SUITE, measure="acknowledged changes lost", figure=str(len(lost))
            + (f": {'; '.join(lost[:3])}" if lost else ""), target="0", met=not lost),
        Row(suite=SUITE, measure="changes half-applied", figure=str(len(half))
            + (f": {'; '.join(half[:3])}" if half else ""), target="0", met=not half),
    ]
