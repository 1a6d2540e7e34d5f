"""VelociPy: a FastAPI-style web framework on a Sans-IO core.

Everything a user imports comes from here; `velocipy.testing` has the TestClient.
"""

from velocipy.app import VelociPy
from velocipy.core import (
    APIRouter,
    BackgroundTasks,
    Body,
    Cookie,
    Depends,
    Form,
    Header,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    Path,
    PlainTextResponse,
    Query,
    RedirectResponse,
    Request,
    RequestValidationError,
    Response,
    StreamingResponse,
    Task,
    TaskState,
)

__version__ = "0.1.0"

__all__ = [
    "APIRouter",
    "BackgroundTasks",
    "Body",
    "Cookie",
    "Depends",
    "Form",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "JSONResponse",
    "Path",
    "PlainTextResponse",
    "Query",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Response",
    "StreamingResponse",
    "Task",
    "TaskState",
    "VelociPy",
    "__version__",
]
