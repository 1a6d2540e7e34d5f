"""Turn VelociPy source into its FastAPI twin, import by import, for the recording tools.

Every name a VelociPy example imports is looked up in `FASTAPI_HOME`: where FastAPI (or
Starlette, for what FastAPI re-exports from it) keeps the same API. A name with no home
there is VelociPy-only, and the source that imports it has no FastAPI twin: `VelociPyOnly`
says which name, so the recorder can list the app as one FastAPI would not accept.
"""

from __future__ import annotations

import ast

#: VelociPy module → {name → FastAPI module that has the same API}; "*" covers the rest.
FASTAPI_HOME: dict[str, dict[str, str]] = {
    "velocipy": {
        "VelociPy": "fastapi",
        **dict.fromkeys(
            [
                "JSONResponse",
                "HTMLResponse",
                "PlainTextResponse",
                "RedirectResponse",
                "StreamingResponse",
                "FileResponse",
                "ORJSONResponse",
            ],
            "fastapi.responses",
        ),
        **dict.fromkeys(
            [
                "APIRouter",
                "BackgroundTasks",
                "Body",
                "Cookie",
                "Depends",
                "File",
                "Form",
                "Header",
                "HTTPException",
                "Path",
                "Query",
                "Request",
                "Response",
                "Security",
                "UploadFile",
                "status",
            ],
            "fastapi",
        ),
    },
    "velocipy.responses": {"*": "fastapi.responses"},
    "velocipy.security": {"Security": "fastapi", "*": "fastapi.security"},
    "velocipy.encoders": {"jsonable_encoder": "fastapi.encoders"},
    "velocipy.status": {"*": "fastapi.status"},
    "velocipy.testing": {"TestClient": "fastapi.testclient"},
    "velocipy.staticfiles": {"StaticFiles": "fastapi.staticfiles"},
    "velocipy.middleware": {
        "CORSMiddleware": "fastapi.middleware.cors",
        "GZipMiddleware": "fastapi.middleware.gzip",
        "TrustedHostMiddleware": "fastapi.middleware.trustedhost",
        "HTTPSRedirectMiddleware": "fastapi.middleware.httpsredirect",
        "BaseHTTPMiddleware": "starlette.middleware.base",
    },
}
#: Our class names → FastAPI's, bound under our name so the rest of the source reads unchanged.
RENAMED = {"VelociPy": "FastAPI"}


class VelociPyOnly(Exception):
    """The source imports a name FastAPI has no equivalent for."""


def fastapi_home(module: str, name: str) -> str:
    homes = FASTAPI_HOME.get(module)
    if homes is None or (name not in homes and "*" not in homes):
        raise VelociPyOnly(f"{module}.{name}")
    return homes.get(name, homes.get("*", ""))


class _Imports(ast.NodeTransformer):
    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | list[ast.stmt]:
        module = node.module or ""
        if module != "velocipy" and not module.startswith("velocipy."):
            return node
        rewritten: list[ast.stmt] = []
        for alias in node.names:
            home = fastapi_home(module, alias.name)
            theirs = RENAMED.get(alias.name, alias.name)
            bound = alias.asname or alias.name
            rewritten.append(
                ast.ImportFrom(
                    module=home,
                    names=[ast.alias(theirs, bound if bound != theirs else None)],
                    level=0,
                )
            )
        return rewritten

    def visit_Import(self, node: ast.Import) -> ast.AST:
        for alias in node.names:
            if alias.name == "velocipy" or alias.name.startswith("velocipy."):
                raise VelociPyOnly(alias.name)
        return node


def as_fastapi(source: str) -> str:
    """The source with its VelociPy imports replaced by FastAPI's; raises `VelociPyOnly`."""
    tree = _Imports().visit(ast.parse(source))
    return ast.unparse(ast.fix_missing_locations(tree))
