"""`VelociPy`: the application class users instantiate.

It is the pure core `Application` plus the entry points servers look for: it is
itself an ASGI 3 application (`uvicorn module:app`), and `app.wsgi` is a PEP
3333 application (`gunicorn module:wsgi` after `wsgi = app.wsgi`). The adapters
are imported on first use, so a WSGI deployment never imports the ASGI code.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from velocipy.core import Application

if TYPE_CHECKING:
    from velocipy.adapters.asgi import ASGIAdapter
    from velocipy.adapters.wsgi import WSGIAdapter


class VelociPy(Application):
    """A VelociPy application: declare routes with `@app.get(...)`, `@app.post(...)`, ...

    Serve it with `velocipy run module:app` (the built-in server), any ASGI
    server (`uvicorn module:app`), or any WSGI server through `app.wsgi`.
    """

    _asgi_adapter: ASGIAdapter | None = None
    _wsgi_adapter: WSGIAdapter | None = None

    def __init__(self, **options: Any) -> None:
        # The pure core takes its clock from here, for task handles' timestamps.
        # No lock by default: under ASGI, the built-in server and the TestClient,
        # task states only change on one thread (the driver's). The WSGI adapter,
        # whose task threads drive exchanges in parallel, installs a lock.
        options.setdefault("clock", time.time)
        super().__init__(**options)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI 3 entry point."""
        adapter = self._asgi_adapter
        if adapter is None:
            from velocipy.adapters.asgi import ASGIAdapter

            adapter = self._asgi_adapter = ASGIAdapter(self)
        await adapter(scope, receive, send)

    @property
    def wsgi(self) -> WSGIAdapter:
        """This app as a PEP 3333 WSGI application (one per app, created on first use)."""
        adapter = self._wsgi_adapter
        if adapter is None:
            from velocipy.adapters.wsgi import WSGIAdapter

            adapter = self._wsgi_adapter = WSGIAdapter(self)
        return adapter
