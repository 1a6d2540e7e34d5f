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

import logging
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from velocipy.core import Application

from ._gc import startup_objects_frozen

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
            `velocipy.adapters._gc`), and unfreeze them at shutdown.
    """
    message = await receive()
    if message["type"] != "lifespan.startup":
        raise RuntimeError(f"expected 'lifespan.startup', got {message['type']!r}")
    started = False
    try:
        async with app.lifespan_context():
            started = True
            with startup_objects_frozen(freeze_gc):
                await send({"type": "lifespan.startup.complete"})
                while True:  # servers send nothing else, but be lenient about extensions
                    message = await receive()
                    if message["type"] == "lifespan.shutdown":
                        # The server has finished (or cut short) every request by now;
                        # say what of the tasks did not complete, by name.
                        if app.tasks.unfinished:
                            logger.warning(
                                "Background tasks unfinished at shutdown: %s",
                                app.tasks.describe(),
                            )
                            app.tasks.log_every_name(logger)
                        break
    except Exception as error:
        phase = "shutdown" if started else "startup"
        # The traceback is the message: it is what the server shows the operator.
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        await send({"type": f"lifespan.{phase}.failed", "message": f"{phase} failed:\n{text}"})
        return
    await send({"type": "lifespan.shutdown.complete"})


async def refuse_websocket(receive: Receive, send: Send) -> None:
    """Close a `websocket` scope cleanly: VelociPy does not serve websockets yet.

    Closing before `websocket.accept` makes the server answer the handshake with
    403, so the client gets a clear refusal instead of a dropped connection.
    """
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1000, "reason": ""})
