"""The shared query file and its placeholders, without a database (the queries
themselves run in tests/store_contract on both backends)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.store import queries
from bot.store.queries import QUERIES, filters, numbered, parse_queries
from bot.store.rules import (
    delivery_status,
    disabled_error,
    shown_status,
    sql_list,
)


def test_blocks_are_named_and_their_doc_lines_dropped() -> None:
    text = "-- header\n\n-- one --\n-- its doc\nSELECT 1\n\n-- two --\nSELECT\n  2\n"
    assert parse_queries(text) == {"one": "SELECT 1", "two": "SELECT\n  2"}


def test_the_file_names_every_query_the_shared_class_runs() -> None:
    source = Path(queries.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r'step\("([a-z_]+)"', source))
    assert used and used <= set(QUERIES)
    assert all("{outbound_columns}" not in sql for sql in QUERIES.values())


def test_named_parameters_are_numbered_once_each_in_order() -> None:
    sql, arguments = numbered("SELECT :b, :a WHERE x = :b")
    assert sql == "SELECT $1, $2 WHERE x = $1"
    assert arguments(a=1, b=2, unused=3) == [2, 1]
    assert numbered("SELECT 1")[1]() == []


@pytest.mark.parametrize("sql", [
    "SELECT provider || ':' || id FROM inbound",
    "SELECT 'it''s :not' FROM t",
    "SELECT x::text FROM t",
])
def test_literals_and_casts_are_not_parameters(sql: str) -> None:
    text, arguments = numbered(sql)
    assert text == sql
    assert arguments() == []


def test_filters_name_only_what_is_given() -> None:
    assert filters(a=None, o__b=2) == ("o.b = :o__b", {"o__b": 2})
    assert filters(a=None) == ("1 = 1", {})


def test_rules_the_backends_share() -> None:
    assert shown_status("sending") == "queued" and shown_status("read") == "read"
    assert sql_list(("queued", "it's")) == "('queued', 'it''s')"
    assert [delivery_status(o) for o in ("delivered", "retry", "failed", "disabled")] == [
        "delivered", "pending", "failed", "failed"]
    assert disabled_error("HTTP 410 Gone") == "endpoint disabled: HTTP 410 Gone"
    assert disabled_error(None) == disabled_error("") == "endpoint disabled: disabled"
