"""The serve process freezes its long-lived heap; a reload lets the old config go."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from bot import heap


class _Config:
    """Stands for a loaded config: long-lived, and holding a cycle."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freeze_hides_what_is_alive_from_the_collector(thawed: None) -> None:
    loaded = _Config()
    heap.freeze()
    assert gc.get_freeze_count() > 0
    # A full collection no longer walks what was loaded before the freeze.
    assert not any(obj is loaded for obj in gc.get_objects())


def test_refreeze_after_a_reload_lets_the_old_config_go(thawed: None) -> None:
    old = _Config()
    gone = weakref.ref(old)
    heap.freeze()
    del old  # the reload swapped a new config in: the old one is garbage, in a cycle
    gc.collect()
    assert gone() is not None, "frozen garbage stays until the heap is refrozen"
    heap.refreeze()
    assert gone() is None
    assert gc.get_freeze_count() > 0


def test_refreeze_does_nothing_in_a_process_that_never_froze(thawed: None) -> None:
    heap.refreeze()
    assert gc.get_freeze_count() == 0
