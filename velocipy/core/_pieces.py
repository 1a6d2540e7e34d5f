"""Reading a body piece by piece: which `ReadChunk` to ask for next, and when the body is over.

Both streamed readers use it: the multipart form reader (`_forms.py`, a flow of
effects) and `Request.stream()` (user code, through the driver's `perform`).
It asks for no more than a declared `Content-Length` leaves, so that a WSGI
server is never asked to read past the body, counts what arrived against the
limit, and tells a body cut short (the client gone) from a complete one.
"""

from __future__ import annotations

from ._datastructures import Headers
from ._errors import BodyTooLarge, ClientDisconnected, ClientError
from ._events import ReadChunk

#: Bytes asked for per `ReadChunk`: large enough to keep effects few, small enough for memory.
CHUNK_SIZE = 64 * 1024


def declared_length(headers: Headers) -> int | None:
    """The request's `Content-Length`, if it has one; 400 when it is not a length."""
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise ClientError("Invalid Content-Length header") from None
    if length < 0:
        raise ClientError("Invalid Content-Length header")
    return length


class BodyPieces:
    """Where a piece-by-piece read stands: `next()` is the effect to perform, or None at the end.

    Raises `BodyTooLarge` at once for a declared length past `limit`, and as soon
    as the pieces pass it; `ClientDisconnected` when the body ends short of its
    declared length.
    """

    __slots__ = ("limit", "declared", "received", "more")

    def __init__(self, headers: Headers, limit: int) -> None:
        self.limit = limit
        self.declared = declared_length(headers)
        if self.declared is not None and self.declared > limit:
            raise BodyTooLarge(limit)
        self.received = 0
        self.more = True

    def next(self) -> ReadChunk | None:
        """The next read, or None once the body is complete."""
        if not self.more:
            return None
        declared = self.declared
        size = CHUNK_SIZE if declared is None else min(CHUNK_SIZE, declared - self.received)
        if size <= 0:
            self.more = False
            return None
        return ReadChunk(self.limit, size)

    def took(self, data: bytes, more: bool) -> None:
        """Account for the piece `(data, more)` the read returned."""
        self.received += len(data)
        if self.received > self.limit:
            raise BodyTooLarge(self.limit)
        if not more:
            self.more = False
            if self.declared is not None and self.received < self.declared:
                raise ClientDisconnected()
