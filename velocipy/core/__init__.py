"""The Sans-IO core: routing, parameter plans, the exchange state machine, background tasks.

Pure by rule: only the standard library, and nothing that does I/O or
concurrency (no asyncio, anyio, threading, socket, select, h11). Adapters in
`velocipy.adapters` perform the effects an `Exchange` asks for.
"""

from ._application import DEFAULT_MAX_BODY_SIZE, ROUTE_OPTIONS, APIRouter, Application
from ._backends import InProcess, RecordingBackend, TaskBackend
from ._datastructures import Headers, QueryParams, RawHeaders, State
from ._envelopes import Envelope, TaskNotPortable
from ._errors import (
    BodyTooLarge,
    ClientDisconnected,
    ClientError,
    ContainedBaseException,
    DeclarationError,
    HTTPException,
    LocalProtocolError,
    MalformedBody,
    RequestValidationError,
    ResponseValidationError,
    TaskTimedOut,
)
from ._events import (
    Call,
    CallNext,
    Done,
    Effect,
    OpenBody,
    OpenSpool,
    ReadBody,
    ReadChunk,
    RequestHead,
    Respond,
    StatefulHead,
    StreamBody,
)
from ._exchange import Exchange, Phase, default_error_response
from ._params import Body, Cookie, Depends, File, Form, Header, Path, Query
from ._queue import QueuedTask
from ._registry import TaskRegistry
from ._request import Request
from ._responses import (
    HTMLResponse,
    JSONResponse,
    MutableHeaders,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
    encode_json,
)
from ._routing import NoMatchFound, Route, RouteInfo
from ._scopes import Security, SecurityScopes
from ._status import reason_phrase
from ._tasks import BackgroundTasks, Task, TaskState
from ._uploads import FormData, FormLimits, UploadFile

__all__ = [
    "QueuedTask",
    "TaskNotPortable",
    "Envelope",
    "TaskBackend",
    "RecordingBackend",
    "InProcess",
    "ROUTE_OPTIONS",
    "RouteInfo",
    "Route",
    "NoMatchFound",
    "MutableHeaders",
    "Security",
    "SecurityScopes",
    "State",
    "ResponseValidationError",
    "APIRouter",
    "Application",
    "BackgroundTasks",
    "Body",
    "BodyTooLarge",
    "Call",
    "CallNext",
    "ClientDisconnected",
    "ClientError",
    "ContainedBaseException",
    "Cookie",
    "DEFAULT_MAX_BODY_SIZE",
    "DeclarationError",
    "Depends",
    "Done",
    "Effect",
    "Exchange",
    "File",
    "Form",
    "FormData",
    "FormLimits",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "Headers",
    "JSONResponse",
    "LocalProtocolError",
    "MalformedBody",
    "OpenBody",
    "OpenSpool",
    "Path",
    "Phase",
    "PlainTextResponse",
    "Query",
    "QueryParams",
    "RawHeaders",
    "ReadBody",
    "ReadChunk",
    "RedirectResponse",
    "Request",
    "RequestHead",
    "RequestValidationError",
    "Respond",
    "Response",
    "StatefulHead",
    "StreamBody",
    "StreamingResponse",
    "Task",
    "TaskRegistry",
    "TaskState",
    "TaskTimedOut",
    "UploadFile",
    "default_error_response",
    "encode_json",
    "reason_phrase",
]
