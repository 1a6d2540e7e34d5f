"""Keeping what startup built out of the garbage collector's scans, while the app serves.

Used by the ASGI adapter's lifespan and by the built-in server, after the app's
startup: the objects alive then (imported modules, the app, whatever startup
built) live as long as the process, so scanning them is wasted work, done in
the pauses of full collections that the slowest responses wait on when many
requests are in flight. docs/asgi.md and docs/server.md have the figures.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


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
