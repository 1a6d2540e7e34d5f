"""Where uploads go once they outgrow memory: the adapters' answer to the `OpenSpool` effect.

The core asks for a temporary file (`OpenSpool`) when a file part grows past
`FormLimits.spool_size`; the drivers open it here (async drivers in a worker
thread). The file is anonymous: the system deletes it when it is closed, or
when the process dies, so no path can leave a half-written upload on disk.
`offload` is what `UploadFile`'s async methods use to touch it off the loop.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import IO, Any

import anyio.to_thread


async def offload(fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn(*args)` in a worker thread (disk I/O must not block the event loop)."""
    return await anyio.to_thread.run_sync(fn, *args)


def open_spool() -> tuple[IO[bytes], Callable[..., Any]]:
    """The answer to `OpenSpool`: an anonymous temporary file and the `offload` function."""
    return tempfile.TemporaryFile(prefix="velocipy-upload-"), offload
