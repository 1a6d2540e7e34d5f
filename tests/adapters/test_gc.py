"""The collector's thresholds while the built-in server is busy: only CPython's are replaced,
only ours are put back, and the off switch works (the server itself: test_server.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from velocipy.adapters._gc import DEFAULT_THRESHOLDS, SERVING_THRESHOLDS, ThresholdSwitch


@pytest.fixture(autouse=True)
def cpython_thresholds() -> Iterator[None]:
    """Start from CPython's thresholds and give back whatever was there."""
    before = gc.get_threshold()
    gc.set_threshold(*DEFAULT_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def test_busy_sets_the_serving_thresholds_and_calm_gives_cpythons_back() -> None:
    switch = ThresholdSwitch()
    switch.busy()
    assert gc.get_threshold() == SERVING_THRESHOLDS
    switch.busy()  # again: nothing changes
    assert gc.get_threshold() == SERVING_THRESHOLDS
    switch.calm()
    assert gc.get_threshold() == DEFAULT_THRESHOLDS
    switch.calm()
    assert gc.get_threshold() == DEFAULT_THRESHOLDS


def test_thresholds_someone_else_set_are_left_alone() -> None:
    gc.set_threshold(5_000, 20, 20)  # set before serving
    switch = ThresholdSwitch()
    switch.busy()
    assert gc.get_threshold() == (5_000, 20, 20)
    switch.calm()
    assert gc.get_threshold() == (5_000, 20, 20)

    gc.set_threshold(*DEFAULT_THRESHOLDS)
    switch.busy()
    gc.set_threshold(1_000, 10, 10)  # the app's own choice, made while busy
    switch.calm()
    assert gc.get_threshold() == (1_000, 10, 10)


def test_a_switch_turned_off_changes_nothing() -> None:
    switch = ThresholdSwitch(enabled=False)
    switch.busy()
    assert gc.get_threshold() == DEFAULT_THRESHOLDS
    assert not switch.tuned
