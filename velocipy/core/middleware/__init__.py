"""Middleware in the core: the stack that composes it, and the built-in transforms.

Built-in middleware (CORS, GZip, TrustedHost, HTTPS redirect) are pure
`Transform`s; user middleware (`call_next` style) is an effect, `CallNext`,
performed by the drivers. `_stack.py` says how the two compose.
"""

from ._base import BaseHTTPMiddleware
from ._cors import CORSMiddleware
from ._gzip import GZipMiddleware
from ._hosts import HTTPSRedirectMiddleware, TrustedHostMiddleware
from ._next import NextPart, NextResponse
from ._stack import HTTPLayer, Layer, MiddlewareStack
from ._transform import Transform

__all__ = [
    "BaseHTTPMiddleware",
    "CORSMiddleware",
    "GZipMiddleware",
    "HTTPLayer",
    "HTTPSRedirectMiddleware",
    "Layer",
    "MiddlewareStack",
    "NextPart",
    "NextResponse",
    "Transform",
    "TrustedHostMiddleware",
]
