"""`UploadFile` and `FormData`: what a handler gets from a multipart form.

An `UploadFile` wraps a binary file: an in-memory buffer while the part is
small, a temporary file on disk once it outgrew `FormLimits.spool_size`. The
core never opens that file: the adapter does, when the core asks for it with
an `OpenSpool` effect, and hands back with it an `offload` function, which the
async methods use so that disk reads never block an event loop.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from ._datastructures import Headers

#: `await offload(fn, *args)` runs `fn(*args)` away from the event loop (a worker thread).
Offload = Callable[..., Awaitable[Any]]

KIB = 1024
MIB = 1024 * KIB


@dataclass(slots=True)
class FormLimits:
    """Limits on form bodies (`application/x-www-form-urlencoded` and `multipart/form-data`).

    Each is answered with a 4xx and a short JSON `detail` when passed.

    Attributes:
        max_size: Largest multipart body in bytes (413 beyond). A urlencoded
            body is held in memory whole and keeps the app's `max_body_size`.
        max_files: Most file parts in one multipart body (400 beyond), as
            Starlette's `max_files`.
        max_fields: Most non-file fields in one form (400 beyond), as `max_fields`.
        max_field_size: Largest non-file field in bytes (400 beyond); file parts
            are not bound by it, they go to disk.
        max_part_header_size: Largest header block of one part in bytes (400 beyond).
        spool_size: A file part larger than this moves from memory to a temporary
            file on disk, so an upload never holds more than this per file in memory.
    """

    max_size: int = 100 * MIB
    max_files: int = 1000
    max_fields: int = 1000
    max_field_size: int = 1 * MIB
    max_part_header_size: int = 16 * KIB
    spool_size: int = 1 * MIB


class UploadFile:
    """An uploaded file: its name, type and headers, and its content in `file`.

    `file` is a binary file object (use it directly from sync code); the async
    methods `read`, `write`, `seek` and `close` do the same without blocking an
    event loop once the content is on disk. Files are closed by the framework
    after the response *and* after the request's background tasks, so a task
    handed an `UploadFile` can still read it.
    """

    __slots__ = ("file", "filename", "headers", "size", "_offload")

    def __init__(
        self,
        file: IO[bytes],
        *,
        size: int | None = None,
        filename: str | None = None,
        headers: Headers | Mapping[str, str] | None = None,
        offload: Offload | None = None,
    ) -> None:
        self.file = file
        self.filename = filename
        if headers is None:
            headers = Headers(())
        elif not isinstance(headers, Headers):
            headers = Headers(
                [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            )
        self.headers = headers
        self.size = size
        self._offload = offload

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def in_memory(self) -> bool:
        """Whether the content is in memory (not spooled to a temporary file)."""
        return self._offload is None

    async def read(self, size: int = -1) -> bytes:
        if self._offload is None:
            return self.file.read(size)
        data: bytes = await self._offload(self.file.read, size)
        return data

    async def write(self, data: bytes) -> None:
        if self.size is not None:
            self.size += len(data)
        if self._offload is None:
            self.file.write(data)
        else:
            await self._offload(self.file.write, data)

    async def seek(self, offset: int) -> None:
        if self._offload is None:
            self.file.seek(offset)
        else:
            await self._offload(self.file.seek, offset)

    async def close(self) -> None:
        if self._offload is None:
            self.file.close()
        else:
            await self._offload(self.file.close)

    def __repr__(self) -> str:
        return (
            f"UploadFile(filename={self.filename!r}, size={self.size!r}, headers={self.headers!r})"
        )


class FormData(Mapping[str, Any]):
    """A parsed form: field names to values (`str` or `UploadFile`), repeats kept.

    `form[name]` and `form.get(name)` give the last value of a name,
    `form.getlist(name)` every value; `form.multi_items()` the pairs in order.
    """

    __slots__ = ("_lists",)

    def __init__(self, lists: dict[str, list[Any]] | None = None) -> None:
        self._lists = lists if lists is not None else {}

    def __getitem__(self, key: str) -> Any:
        return self._lists[key][-1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lists)

    def __len__(self) -> int:
        return len(self._lists)

    def getlist(self, key: str) -> list[Any]:
        return list(self._lists.get(key, ()))

    def multi_items(self) -> list[tuple[str, Any]]:
        return [(key, value) for key, values in self._lists.items() for value in values]

    async def close(self) -> None:
        """Close every uploaded file of the form."""
        for values in self._lists.values():
            for value in values:
                if isinstance(value, UploadFile):
                    await value.close()

    def __repr__(self) -> str:
        return f"FormData({self.multi_items()!r})"


def memory_buffer() -> io.BytesIO:
    """The in-memory start of every file part."""
    return io.BytesIO()
