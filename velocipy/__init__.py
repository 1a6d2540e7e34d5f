"""VelociPy: a FastAPI-style web framework on a Sans-IO core.

Everything a user imports comes from here; `velocipy.testing` has the TestClient.
"""

from velocipy import status
from velocipy.app import VelociPy
from velocipy.core import (
    APIRouter,
    BackgroundTasks,
    Body,
    Cookie,
    Depends,
    File,
    Form,
    FormData,
    FormLimits,
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
    ResponseValidationError,
    Security,
    StreamingResponse,
    Task,
    TaskState,
    UploadFile,
)
from velocipy.responses import FileResponse, ORJSONResponse

__version__ = "0.1.0"

__all__ = [
    "APIRouter",
    "BackgroundTasks",
    "Body",
    "Cookie",
    "Depends",
    "File",
    "FileResponse",
    "Form",
    "FormData",
    "FormLimits",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "ORJSONResponse",
    "JSONResponse",
    "Path",
    "PlainTextResponse",
    "Query",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Security",
    "Response",
    "ResponseValidationError",
    "StreamingResponse",
    "Task",
    "TaskState",
    "UploadFile",
    "VelociPy",
    "__version__",
    "status",
]
