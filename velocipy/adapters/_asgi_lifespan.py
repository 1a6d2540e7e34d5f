"""ASGI scopes other than `http`: the `lifespan` protocol, and a clean refusal of websockets.

`lifespan` enters the app's `lifespan_context()` (its lifespan function and
startup hooks) on `lifespan.startup` and leaves it, once, on
`lifespan.shutdown`. A failure is reported to the server with its traceback as
the message (uvicorn prints it and exits), never raised into the server.

Once startup has succeeded, the objects that exist by then (imported modules,
the app, whatever startup built) are moved out of the garbage collector's
sight with `gc.freeze()`, and given back at shutdown. They live as long as the
process, so scanning them is wasted work, and it is work done in the pauses of
full collections: with many requests in flight (slow background tasks), those
pauses are what the slowest responses wait on. docs/asgi.md has the figures.
"""

from __future__ import annotations

import gc
import logging
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from velocipy.core import Application

logger = logging.getLogger("velocipy")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def run_lifespan(
    app: Application, receive: Receive, send: Send, *, freeze_gc: bool = True
) -> None:
    """Serve one ASGI `lifespan` scope for `app`.

    Args:
        app: The application whose lifespan this is.
        receive: The scope's `receive`.
        send: The scope's `send`.
        freeze_gc: Freeze the objects that exist once startup is complete (see
            `freeze_startup_objects`), and unfreeze them at shutdown.
    """
    message = await receive()
    if message["type"] != "lifespan.startup":
        raise RuntimeError(f"expected 'lifespan.startup', got {message['type']!r}")
    started = False
    froze = False
    try:
        async with app.lifespan_context():
            started = True
            if freeze_gc:
                froze = freeze_startup_objects()
            await send({"type": "lifespan.startup.complete"})
            while True:  # servers send nothing else, but be lenient about extensions
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    # The server has finished (or cut short) every request by now;
                    # say what of the tasks did not complete, by name.
                    if app.tasks.unfinished:
                        logger.warning(
                            "Background tasks unfinished at shutdown: %s", app.tasks.describe()
                        )
                    if froze:
                        # What startup built may be cyclic garbage after shutdown (a test
                        # suite starting many apps, say): let the collector see it again.
                        gc.unfreeze()
                    break
    except Exception as error:
        phase = "shutdown" if started else "startup"
        # The traceback is the message: it is what the server shows the operator.
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        await send({"type": f"lifespan.{phase}.failed", "message": f"{phase} failed:\n{text}"})
        return
    await send({"type": "lifespan.shutdown.complete"})


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


async def refuse_websocket(receive: Receive, send: Send) -> None:
    """Close a `websocket` scope cleanly: VelociPy does not serve websockets yet.

    Closing before `websocket.accept` makes the server answer the handshake with
    403, so the client gets a clear refusal instead of a dropped connection.
    """
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1000, "reason": ""})
