"""Reading a form body as effects: urlencoded whole, multipart streamed piece by piece.

`read_form` is a sub-flow of the exchange (`yield from read_form(...)`). A
urlencoded body is small and read whole (`ReadBody`). A multipart body is
pulled with `ReadChunk` and pushed into python-multipart's parser, which does
no I/O (it calls back with what it finds, as h11 returns events). File parts
start in memory; one that grows past `FormLimits.spool_size` asks the adapter
for a temporary file (`OpenSpool`) and is written to it with `Call` effects
(purpose `"spool"`), which async adapters run in a worker thread. So memory
per request stays bounded whatever the upload's size, and the core opens no
file.

Every `UploadFile` made is appended to the caller's `uploads` list as soon as it
exists, so that whatever happens next (a limit hit, a malformed body, the
client gone, the handler failing) the exchange can close it; temporary files
are anonymous (deleted by the system once closed), so nothing is left on disk.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qsl

from ._datastructures import Headers
from ._errors import ClientError, MalformedBody
from ._events import Call, Effect, OpenSpool, ReadBody, ReadChunk
from ._pieces import BodyPieces
from ._uploads import FormLimits, UploadFile, memory_buffer

_OPEN_SPOOL = OpenSpool()

# python-multipart reports what it finds through callbacks; they are queued as
# (kind, data) and handled after each `write`, because only the flow may yield effects.
_PART_BEGIN, _HEADER_FIELD, _HEADER_VALUE, _HEADER_END, _HEADERS_DONE = range(5)
_PART_DATA, _PART_END, _END = range(5, 8)


class FormError(ClientError):
    """A form the server will not take: too many parts, a part too large, malformed (400)."""


def multipart_available() -> bool:
    """Whether python-multipart is installed (routes that take files need it)."""
    try:
        import python_multipart  # noqa: F401
    except ImportError:
        return False
    return True


def read_form(
    headers: Headers,
    limits: FormLimits,
    body_effect: ReadBody,
    in_memory: frozenset[str],
    uploads: list[UploadFile],
) -> Generator[Effect, Any, dict[str, list[Any]]]:
    """Read the request's form: each name mapped to its values (`str` or `UploadFile`).

    `in_memory` names file fields that must stay in memory whatever their size
    (they are asked for as `bytes`); `uploads` collects every file made.
    """
    content_type = headers.get("content-type") or ""
    mime, _, rest = content_type.partition(";")
    if mime.strip().lower() == "multipart/form-data":
        return (yield from _read_multipart(headers, content_type, limits, in_memory, uploads))
    body: bytes = yield body_effect
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("Form body is not valid UTF-8") from None
    form: dict[str, list[Any]] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=limits.max_fields)
    except ValueError:
        raise FormError(
            f"Too many fields. Maximum number of fields is {limits.max_fields}."
        ) from None
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    return form


def _read_multipart(
    headers: Headers,
    content_type: str,
    limits: FormLimits,
    in_memory: frozenset[str],
    uploads: list[UploadFile],
) -> Generator[Effect, Any, dict[str, list[Any]]]:
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise FormError("Missing boundary in multipart.")
    pieces = BodyPieces(headers, limits.max_size)

    queue: list[tuple[int, bytes]] = []
    push = queue.append
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": lambda: push((_PART_BEGIN, b"")),
            "on_part_data": lambda data, start, end: push((_PART_DATA, data[start:end])),
            "on_part_end": lambda: push((_PART_END, b"")),
            "on_header_field": lambda data, start, end: push((_HEADER_FIELD, data[start:end])),
            "on_header_value": lambda data, start, end: push((_HEADER_VALUE, data[start:end])),
            "on_header_end": lambda: push((_HEADER_END, b"")),
            "on_headers_finished": lambda: push((_HEADERS_DONE, b"")),
            "on_end": lambda: push((_END, b"")),
        },
    )
    part = _Part(limits, in_memory)
    form: dict[str, list[Any]] = {}
    files = fields = 0
    ended = False
    while (read := pieces.next()) is not None:
        data, more = yield read
        pieces.took(data, more)
        if not data:
            continue
        try:
            parser.write(data)
        except MultipartParseError as error:
            raise FormError(f"Malformed multipart body: {error}") from None
        for kind, chunk in queue:
            if kind is _PART_DATA:
                if part.file is not None:
                    yield from part.write_file(chunk)
                else:
                    part.add_field_data(chunk)
            elif kind is _HEADER_FIELD:
                part.header_field(chunk)
            elif kind is _HEADER_VALUE:
                part.header_value(chunk)
            elif kind is _HEADER_END:
                part.header_end()
            elif kind is _HEADERS_DONE:
                part.headers_done()
                if part.filename is not None:
                    files += 1
                    if files > limits.max_files:
                        raise FormError(
                            f"Too many files. Maximum number of files is {limits.max_files}."
                        )
                    upload = part.start_file()
                    uploads.append(upload)
                    form.setdefault(part.name, []).append(upload)
                else:
                    fields += 1
                    if fields > limits.max_fields:
                        raise FormError(
                            f"Too many fields. Maximum number of fields is {limits.max_fields}."
                        )
            elif kind is _PART_END:
                if part.file is not None:
                    yield from part.finish_file()
                else:
                    form.setdefault(part.name, []).append(part.field_value())
            elif kind is _PART_BEGIN:
                part.reset()
            else:
                ended = True
        queue.clear()
    if not ended:
        raise FormError("Malformed multipart body: it ends before its closing boundary")
    return form


class _Part:
    """The part being read: its headers, then its content (a field's bytes, or a file)."""

    __slots__ = (
        "limits",
        "in_memory",
        "raw_headers",
        "header_size",
        "field",
        "value",
        "name",
        "filename",
        "data",
        "file",
        "upload",
    )

    def __init__(self, limits: FormLimits, in_memory: frozenset[str]) -> None:
        self.limits = limits
        self.in_memory = in_memory
        self.reset()

    def reset(self) -> None:
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.header_size = 0
        self.field = b""
        self.value = b""
        self.name = ""
        self.filename: str | None = None
        self.data = bytearray()
        self.file: Any = None
        self.upload: UploadFile | None = None

    # -- headers ----------------------------------------------------------------------------

    def _grow_headers(self, chunk: bytes) -> None:
        self.header_size += len(chunk)
        if self.header_size > self.limits.max_part_header_size:
            raise FormError(
                "Part headers exceeded maximum size of "
                f"{self.limits.max_part_header_size // 1024}KB."
            )

    def header_field(self, chunk: bytes) -> None:
        self._grow_headers(chunk)
        self.field += chunk

    def header_value(self, chunk: bytes) -> None:
        self._grow_headers(chunk)
        self.value += chunk

    def header_end(self) -> None:
        self.raw_headers.append((self.field.lower(), self.value))
        self.field = self.value = b""

    def headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        disposition = None
        for field, value in self.raw_headers:
            if field == b"content-disposition":
                disposition = value
        if disposition is None:
            raise FormError("Malformed multipart body: a part has no Content-Disposition header")
        _, options = parse_options_header(disposition)
        name = options.get(b"name")
        if name is None:
            raise FormError("Malformed multipart body: a part has no name")
        self.name = name.decode("utf-8", errors="replace")
        filename = options.get(b"filename")
        self.filename = None if filename is None else filename.decode("utf-8", errors="replace")

    # -- a field ----------------------------------------------------------------------------

    def add_field_data(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limits.max_field_size:
            raise FormError(
                f"Part exceeded maximum size of {self.limits.max_field_size // 1024}KB."
            )

    def field_value(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedBody(f"Form field {self.name!r} is not valid UTF-8") from None

    # -- a file -----------------------------------------------------------------------------

    def start_file(self) -> UploadFile:
        self.file = memory_buffer()
        self.upload = UploadFile(
            self.file, size=0, filename=self.filename, headers=Headers(self.raw_headers)
        )
        return self.upload

    def write_file(self, chunk: bytes) -> Generator[Effect, Any, None]:
        upload = self.upload
        assert upload is not None and upload.size is not None
        upload.size += len(chunk)
        if upload._offload is None:
            if upload.size <= self.limits.spool_size or self.name in self.in_memory:
                self.file.write(chunk)
                return
            # Past the threshold: move what is in memory to a temporary file from the adapter.
            buffered = self.file.getvalue()
            spool, offload = yield _OPEN_SPOOL
            upload.file, upload._offload = spool, offload
            self.file = spool
            yield Call(spool.write, (buffered + chunk,), {}, False, "spool")
            return
        yield Call(self.file.write, (chunk,), {}, False, "spool")

    def finish_file(self) -> Generator[Effect, Any, None]:
        upload = self.upload
        assert upload is not None
        if upload._offload is None:
            self.file.seek(0)
        else:
            yield Call(self.file.seek, (0,), {}, False, "spool")
        self.file = None


def parse_form(headers: Headers, body: bytes, limits: FormLimits) -> dict[str, list[Any]]:
    """Parse a form body already in memory (`await request.form()` on a body read whole).

    Drives `read_form` by hand: the body is the only piece, and files stay in memory.
    """
    in_memory = FormLimits(
        max_size=max(limits.max_size, len(body)),
        max_files=limits.max_files,
        max_fields=limits.max_fields,
        max_field_size=limits.max_field_size,
        max_part_header_size=limits.max_part_header_size,
        spool_size=len(body) + 1,
    )
    flow = read_form(headers, in_memory, ReadBody(len(body)), frozenset(), [])
    try:
        effect = next(flow)
        while True:
            if isinstance(effect, ReadChunk):
                effect = flow.send((body, False))
            elif isinstance(effect, ReadBody):
                effect = flow.send(body)
            else:  # pragma: no cover - files this small never leave memory
                raise AssertionError(f"unexpected effect {effect!r}")
    except StopIteration as done:
        form: dict[str, list[Any]] = done.value
        return form
