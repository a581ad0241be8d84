"""PostgreSQL: due rows by group (a webhook endpoint, an outbound number), for
claims that skip busy groups at a cost independent of their backlogs.

A queue's partial index on (group, next_attempt_at) is stepped through one
group at a time (a loose index scan: a recursive CTE seeking the next group
past the last one, one index descent each), and each group's earliest rows
come from the same index. A busy group costs one seek however many rows it
holds, and every other group's due rows are still found, oldest first."""

from __future__ import annotations

from collections.abc import Sequence

# Each seek orders by the whole group index, (group, next_attempt_at), and
# names its rows as its predicate does, `(status = ...) IS TRUE`: the same
# rows as `status = ...`, but a condition the due index's predicate does not
# follow from. So only the group index can serve a seek; the due index (which
# would walk the busy groups' rows to find another's) or an index starting
# with the group but holding every status cannot, whatever the statistics.
_IN_INDEX_ORDER = "{}, next_attempt_at"


def _in_groups(status: str) -> str:
    """SQL: the row is of `status`, written as the group index's predicate."""
    return f"(status = '{status}') IS TRUE"


def still_due(status: str, due: str) -> str:
    """SQL: a picked row is still of `status` and due by `due` (checked again
    as a claim locks its picks), written so that no partial index matches: the
    picks are found by their ids, never by a due or group index filtered by id
    (which would walk the busy groups' rows)."""
    return f"(status = '{status}' AND next_attempt_at <= {due}) IS TRUE"


def group_steps(table: str, status: str, keys: Sequence[str]) -> str:
    """SQL: the CTE `grp` (of a WITH RECURSIVE): every group (`keys`, in index
    order) that has rows of `status` in `table`."""
    columns = ", ".join(keys)
    last = ", ".join(f"grp.{key}" for key in keys)
    rows = _in_groups(status)
    return (f"grp AS ((SELECT {columns} FROM {table} WHERE {rows}"
            f" ORDER BY {_IN_INDEX_ORDER.format(columns)} LIMIT 1) UNION ALL SELECT step.*"
            f" FROM grp, LATERAL (SELECT {columns} FROM {table} WHERE {rows}"
            f" AND ({columns}) > ({last}) ORDER BY {_IN_INDEX_ORDER.format(columns)}"
            " LIMIT 1) AS step)")


def group_heads(table: str, status: str, keys: Sequence[str], columns: str, among: str,
                due: str | None, limit: str, free: str | None = None) -> str:
    """SQL: the earliest rows (`columns` and next_attempt_at, as `head`) of
    `status` (due by `due` when given, and `free` when given: a condition the
    index does not hold, checked on each row the seek reads) of each group of
    `grp` that is `among` (a condition on `grp`), up to `limit` of each: the
    rows a claim picks from, oldest first once ordered by head.next_attempt_at
    and cut at `limit` again."""
    same = " AND ".join(f"{table}.{key} = grp.{key}" for key in keys)
    if due is not None:
        same += f" AND next_attempt_at <= {due}"
    if free is not None:
        same += f" AND {free}"
    # The groups not among are dropped first (MATERIALIZED: before, never
    # after, their seeks).
    return (f"WITH free AS MATERIALIZED (SELECT * FROM grp WHERE {among})"
            f" SELECT head.* FROM free AS grp, LATERAL (SELECT {columns}, next_attempt_at"
            f" FROM {table} WHERE {_in_groups(status)} AND {same}"
            f" ORDER BY {_IN_INDEX_ORDER.format(', '.join(keys))} LIMIT {limit}) AS head")


def lease_free(now: str) -> str:
    """SQL: the row is not leased at `now` (never claimed, released, or its
    claim's lease over: a crashed holder's rows come due again then)."""
    return f"(claimed_until IS NULL OR claimed_until <= {now})"


def due_with_leases(rows: str, order: str) -> str:
    """SQL, a scalar: when the earliest of `rows` (`table WHERE ...`, walked in
    the order `order` of an index on next_attempt_at) falls due, where a claim
    leaves next_attempt_at as it was and a leased row (claimed_until set) falls
    due at its lease's end. The walks pass leased rows only (as many as are in
    flight): to the first row not leased, then the leased ones strictly before
    it (one at its time is leased past it)."""
    first = (f"SELECT next_attempt_at FROM {rows} AND claimed_until IS NULL"
             f" ORDER BY {order} LIMIT 1")
    return (f"(SELECT LEAST(f.at, (SELECT MIN(claimed_until) FROM {rows}"
            " AND claimed_until IS NOT NULL AND next_attempt_at < COALESCE(f.at, 'infinity')))"
            f" FROM (SELECT ({first}) AS at) AS f)")
