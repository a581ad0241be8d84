"""Filled in once webhook deliveries land."""

from __future__ import annotations

from typing import Any


def run_delivery_benchmarks(bench: Any) -> None:
    print("(d) webhook drain: not yet measured")

