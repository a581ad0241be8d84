"""The config snapshot a request runs under, and the two keys that hold it.

Apart from the app's other keys (bot/web/keys.py), so that provider routes
and the request helpers reach the snapshot without importing the app's hub.
"""

from __future__ import annotations

from aiohttp import web

from bot.config.snapshot import Snapshot, SnapshotHolder

holder_key = web.AppKey("holder", SnapshotHolder)
# The config snapshot a request was pinned to when it came in (request middleware).
snapshot_request_key = web.RequestKey("snapshot", Snapshot)


def snapshot_of(request: web.Request) -> Snapshot:
    """The config and locales in force when this request arrived: read once per
    request, so a reload in the middle of it never mixes two configs."""
    snap = request.get(snapshot_request_key)
    if snap is None:
        snap = request[snapshot_request_key] = request.config_dict[holder_key].current
    return snap
