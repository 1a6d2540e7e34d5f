"""The collector's thresholds while the built-in server is busy: only CPython's are replaced,
only ours are put back, and the off switch works (the server itself: test_server.py)."""

from __future__ import annotations

import collections
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


def _largest_young_collection(requests: int, in_flight: int) -> int:
    """Serve `requests` fake requests, each keeping 30 tracked objects alive until
    `in_flight` newer ones came (a task sleeping), with some garbage besides; return the
    most objects any young collection (generation 0 or 1) had to scan."""
    largest = 0

    def measure(phase: str, info: dict[str, int]) -> None:
        nonlocal largest
        if phase == "start" and info["generation"] < 2:
            scanned = sum(len(gc.get_objects(g)) for g in range(info["generation"] + 1))
            largest = max(largest, scanned)

    gc.collect()
    gc.callbacks.append(measure)
    try:
        flights: collections.deque[list[object]] = collections.deque()
        for number in range(requests):
            garbage = [[number] for _ in range(20)]
            del garbage
            flights.append([{"n": [number]}, *([number] for _ in range(29))])
            if len(flights) > in_flight:
                flights.popleft()
    finally:
        gc.callbacks.remove(measure)
    return largest


def test_young_collections_stay_small_while_objects_in_flight_churn() -> None:
    """The reason for the serving thresholds: with 1,000 requests in flight, each keeping 30
    objects alive, old ones die as fast as new ones come; CPython's thresholds (and the
    earlier (200, 10, 35)) then let a generation-1 collection scan thousands of objects."""
    switch = ThresholdSwitch()
    switch.busy()
    try:
        assert _largest_young_collection(20_000, 1_000) < 1_000
    finally:
        switch.calm()
    assert _largest_young_collection(20_000, 1_000) > 5_000  # CPython's (700, 10, 10)
