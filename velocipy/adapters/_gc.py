"""Short garbage-collector pauses while the app serves, for the slowest responses' sake.

Two measures, both against the pauses that responses wait on when many
requests are in flight (a thousand whose background task sleeps 1 s, say):

- `startup_objects_frozen` (the ASGI adapter's lifespan and the built-in
  server, after the app's startup): the objects alive then (imported modules,
  the app, whatever startup built) live as long as the process, so scanning
  them is wasted work; they are frozen (`gc.freeze()`).
- `ThresholdSwitch` (the built-in server and the ASGI adapter, while many
  background flows are in flight). CPython (3.11 at least) starts a young
  collection when allocations minus deallocations of tracked objects pass the
  first threshold (700). With many tasks in flight, old requests' objects die
  about as fast as new ones are made, so that count hardly moves and the young
  generation grows to tens of thousands of objects before it is collected: a
  pause as long as a full collection, several times a second. While `BUSY_FLOWS`
  flows or more are in flight the thresholds are `SERVING_THRESHOLDS`:

  - young collections after 50 (small, frequent: about 25 us each). Larger
    first thresholds scan less in all but not at every collection: with ~1,000
    tasks sleeping (`python -m bench.gc_pauses --count-scanned`), 50 scans ~59
    objects per request and at most ~5,600 in one collection; 200 scans 40-52
    and let one reach 32,000 (a 6 ms pause), CPython's 700 likewise;
  - every second one is a generation-1 collection (second threshold 0): what
    survived one young collection goes to the old generation at the next. With
    CPython's 10, a generation-1 collection scans what survived ten young ones,
    which under ~1,000 sleeping tasks is thousands of objects (1-5 ms);
  - full collections after 2,400 generation-1 collections (50 x 2 x 2,400 =
    240,000 net allocations, about three times CPython's 700 x 11 x 10). A full
    collection scans every task in flight, and its cost grows faster than their
    number (it is bound by memory, not by the processor: 300 sleeping tasks
    ~3 ms, 1,000 ~30 ms on a loaded 2-core machine), so it must be rare: under
    ~1,000 tasks in flight that is about one every 10 s (with (200, 10, 35),
    one every 3-5 s; with CPython's, several a second). What they reclaim is
    only reference cycles that outlived two young collections; the server's own
    request and task objects make none (freed by their reference counts), so
    only an app's own cycles wait longer.

  Below `CALM_FLOWS` CPython's thresholds return: with few objects in flight the
  count works as designed, and the more frequent young collections would only
  cost every request. Thresholds someone else set are left alone.

docs/asgi.md and docs/server.md have the figures.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: CPython's own thresholds: the only ones `ThresholdSwitch` replaces.
DEFAULT_THRESHOLDS = (700, 10, 10)
#: The thresholds while many flows are in flight (see the module's docstring).
SERVING_THRESHOLDS = (50, 0, 2_400)
#: Flows in flight from which `SERVING_THRESHOLDS` apply...
BUSY_FLOWS = 100
#: ...and below which CPython's return (apart, so that a count hovering around one
#: value does not switch back and forth).
CALM_FLOWS = 10


def freeze_startup_objects() -> bool:
    """Move every object alive now into the collector's permanent generation.

    A full collection first, so that no garbage is frozen with them (frozen
    objects are still freed when their reference count drops to zero, but
    never collected as cycles). Frozen objects are not scanned by later
    collections, which then take time in proportion to what requests create.

    Returns:
        Whether this froze the objects and should unfreeze them at shutdown:
        False when something else (the user, or a server that preloads the app
        and freezes before forking) had frozen objects already, since
        unfreezing would undo its freeze too.
    """
    ours = gc.get_freeze_count() == 0
    gc.collect()
    gc.freeze()
    return ours


@contextlib.contextmanager
def startup_objects_frozen(enabled: bool = True) -> Iterator[None]:
    """Freeze what is alive on entry (if `enabled`); unfreeze on exit if the freeze was ours.

    Unfreezing matters when the process goes on after shutdown (a test suite
    starting many apps, say): what startup built may be cyclic garbage by then.
    """
    froze = enabled and freeze_startup_objects()
    try:
        yield
    finally:
        if froze:
            gc.unfreeze()


class ThresholdSwitch:
    """`SERVING_THRESHOLDS` while the server is busy with flows, CPython's otherwise.

    `busy()` when the flows in flight reach `BUSY_FLOWS`, `calm()` when they fall
    to `CALM_FLOWS` and when serving ends. Only CPython's own thresholds are
    replaced, and only ours are put back: an app's own choice (made before or
    while serving) stays.
    """

    __slots__ = ("enabled", "tuned")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        #: True while `SERVING_THRESHOLDS` are ours to put back.
        self.tuned = False

    def busy(self) -> None:
        if self.enabled and not self.tuned and gc.get_threshold() == DEFAULT_THRESHOLDS:
            gc.set_threshold(*SERVING_THRESHOLDS)
            self.tuned = True

    def calm(self) -> None:
        if self.tuned:
            self.tuned = False
            if gc.get_threshold() == SERVING_THRESHOLDS:
                gc.set_threshold(*DEFAULT_THRESHOLDS)
