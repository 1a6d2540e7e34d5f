"""`VelociPy`: the application class users instantiate.

It is the pure core `Application` plus the entry points servers look for: it is
itself an ASGI 3 application (`uvicorn module:app`), and `app.wsgi` is a PEP
3333 application (`gunicorn module:wsgi` after `wsgi = app.wsgi`). The adapters
are imported on first use, so a WSGI deployment never imports the ASGI code.
It also holds the OpenAPI options and serves the schema and docs pages
(`velocipy.openapi`): the schema is built on first use, and once at startup
so that an ambiguous one stops the server from starting, naming the cause.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from velocipy.core import Application, DeclarationError
from velocipy.openapi._document import DocumentOptions, build_document
from velocipy.openapi._downgrade import downgrade
from velocipy.openapi._routes import DocsOptions, install_docs_routes

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
    #: The OpenAPI document once built (FastAPI's name: custom `openapi()` functions set it).
    openapi_schema: dict[str, Any] | None = None
    _openapi_bytes: bytes | None = None
    _openapi_source: dict[str, Any] | None = None
    _openapi_routes = -1
    _asgi_entry: Any = None

    def __init__(
        self,
        *,
        title: str = "VelociPy",
        version: str = "0.1.0",
        summary: str | None = None,
        description: str = "",
        terms_of_service: str | None = None,
        contact: dict[str, Any] | None = None,
        license_info: dict[str, Any] | None = None,
        servers: list[dict[str, Any]] | None = None,
        root_path: str = "",
        root_path_in_servers: bool = True,
        openapi_tags: list[dict[str, Any]] | None = None,
        external_docs: dict[str, Any] | None = None,
        separate_input_output_schemas: bool = True,
        openapi_version: str = "3.1.0",
        openapi_url: str | None = "/openapi.json",
        docs_url: str | None = "/docs",
        redoc_url: str | None = "/redoc",
        swagger_ui_oauth2_redirect_url: str | None = "/docs/oauth2-redirect",
        swagger_ui_init_oauth: dict[str, Any] | None = None,
        swagger_ui_parameters: dict[str, Any] | None = None,
        docs_cdn: str | None = None,
        **options: Any,
    ) -> None:
        # The pure core takes its clock from here, for task handles' timestamps.
        # No lock by default: under ASGI, the built-in server and the TestClient,
        # task states only change on one thread (the driver's). The WSGI adapter,
        # whose task threads drive exchanges in parallel, installs a lock.
        options.setdefault("clock", time.time)
        super().__init__(**options)
        if openapi_version not in ("3.1.0", "3.0.3"):
            raise DeclarationError(
                f"openapi_version={openapi_version!r}: VelociPy writes '3.1.0' or '3.0.3'"
            )
        if root_path and root_path_in_servers:
            listed = [server.get("url") for server in servers or ()]
            if root_path not in listed:
                servers = [{"url": root_path}, *(servers or ())]
        self.title, self.version, self.openapi_version = title, version, openapi_version
        self.openapi_url, self.docs_url, self.redoc_url = openapi_url, docs_url, redoc_url
        self._document_options = DocumentOptions(
            title=title,
            version=version,
            summary=summary,
            description=description or None,
            terms_of_service=terms_of_service,
            contact=contact,
            license_info=license_info,
            servers=servers,
            tags=openapi_tags,
            external_docs=external_docs,
            separate_input_output_schemas=separate_input_output_schemas,
        )
        install_docs_routes(
            self,
            DocsOptions(
                openapi_url=openapi_url,
                docs_url=docs_url,
                redoc_url=redoc_url,
                swagger_ui_oauth2_redirect_url=swagger_ui_oauth2_redirect_url,
                swagger_ui_init_oauth=swagger_ui_init_oauth,
                swagger_ui_parameters=swagger_ui_parameters,
                docs_cdn=docs_cdn,
                title=title,
                root_path=root_path,
                root_path_in_servers=root_path_in_servers,
            ),
        )

    def check_declarations(self) -> None:
        """Build the OpenAPI document at startup: two models with one name or a repeated
        operationId then stop the app from starting, rather than fail its docs later."""
        if self.openapi_url is not None:
            self.openapi()

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document of this app, built on first use and kept.

        Raises:
            DeclarationError: the declarations cannot be described unambiguously
                (two types with one schema name, one operationId twice).
        """
        routes = self.router.routes
        if self.openapi_schema is None or self._openapi_routes != len(routes):
            document = build_document(list(routes), self._document_options)
            if self.openapi_version != "3.1.0":
                document = downgrade(document, self.openapi_version)
            self.openapi_schema = document
            self._openapi_routes = len(routes)
            self._openapi_bytes = None
        return self.openapi_schema

    def openapi_bytes(self) -> bytes:
        """`openapi()` encoded as JSON, once per document (what `/openapi.json` sends)."""
        document = self.openapi()  # through the instance: a custom `app.openapi` is honoured
        if self._openapi_bytes is None or self._openapi_source is not document:
            self._openapi_bytes = json.dumps(document, ensure_ascii=False).encode()
            self._openapi_source = document
        return self._openapi_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI 3 entry point (inside any pure ASGI middleware added to the app)."""
        entry = self._asgi_entry
        if entry is None:
            from velocipy.adapters.asgi import ASGIAdapter, asgi_entry

            try:
                adapter = self._asgi_adapter = ASGIAdapter(self)
                entry = self._asgi_entry = asgi_entry(self, adapter)
            except DeclarationError as error:
                if scope["type"] != "lifespan":
                    raise
                # Told to the server as a failed startup: raised, uvicorn would take it for
                # an app without lifespan support and serve on (a mount silently skipped).
                await receive()
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                return
        await entry(scope, receive, send)

    @property
    def wsgi(self) -> WSGIAdapter:
        """This app as a PEP 3333 WSGI application (one per app, created on first use)."""
        adapter = self._wsgi_adapter
        if adapter is None:
            from velocipy.adapters.wsgi import WSGIAdapter

            if self.foreign_mounts():
                from velocipy.adapters.wsgi import MountingWSGIAdapter

                adapter = self._wsgi_adapter = MountingWSGIAdapter(self)
            else:
                adapter = self._wsgi_adapter = WSGIAdapter(self)
        return adapter
