"""Request-head checks stricter than h11: what the server refuses before any app code runs.

h11 parses leniently where RFC 9112 lets a recipient choose, and only caps an
*incomplete* head, so a large head arriving in one read passes it. `HeadScanner`
watches the raw bytes of each head as they arrive and `check_request` looks at
the parsed head; each problem raises `Rejected` with the status that answers it
(the connection is then closed):

- whole head larger than the cap: 431 (our own cap, complete heads included);
- request line longer than the cap: 414; too many header fields: 431;
- bare LF line endings (RFC 9112 §2.2 allows them; we do not): 400;
- obsolete line folding (§5.2, h11 unfolds it): 400;
- both Content-Length and Transfer-Encoding (§6.1, the smuggling vector of
  python-hyper/h11#90): 400; Transfer-Encoding on HTTP/1.0 (§6.1): 400;
- a Host header missing or repeated on HTTP/1.1 (§3.2): 400;
- chunk sizes beyond any sane length (h11 accepts 20 hex digits): 400;
- control characters anywhere in the head, bytes past ASCII or two spaces in
  a row in the request line: 400; a method llhttp does not know: 501 (§9.1); a request target that
  is not origin-form, absolute-form or `*` (§3.2): 400;
- an HTTP version other than 1.0 and 1.1: 505 from 2 up, else 400;
- a Transfer-Encoding other than `chunked` alone: 501; a Content-Length that is
  not plain digits, or given twice: 400.

These checks look at bytes and parsed fields only, never at a parser's objects
(except `check_chunk`'s look into h11), so the h11 and the httptools
connections (`protocols/`) both run them and give the same answers.
"""

from __future__ import annotations

import re
from typing import Any

from ._config import ServerConfig

#: Largest chunk size accepted at all; larger is treated as an attack, not a big upload.
MAX_CHUNK_SIZE = 1 << 62

_TERMINATOR = b"\r\n\r\n"
#: Control characters, which have no place in a head (CR and LF end lines; TAB is whitespace).
_CONTROLS = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])

#: The methods llhttp knows (RFC 9110, PATCH, WebDAV and friends): others get 501 on both
#: parsers (RFC 9110 §9.1), as llhttp cannot read a request line with another.
KNOWN_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
    b"SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY "
    b"SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY".split()
)
TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
#: A line that starts with whitespace: obsolete line folding (RFC 9112 §5.2). One search
#: rather than `b"\n " in head`: a bytes `in` first tries its operand as an integer and
#: formats a TypeError before it searches, about 2,600 instructions per test, every head.
_FOLD = re.compile(rb"\n[ \t]").search


class Rejected(Exception):
    """The request cannot be served; answer `status` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


class HeadScanner:
    """Finds where a request head ends in a growing buffer, checking the raw bytes on the way.

    Feed it the buffer after each read; it scans only what is new, so a head
    dribbled byte by byte costs linear time. `feed` returns the offset just past
    the head's blank line, or -1 while the head is incomplete.

    Two byte rules are checked here only where the parser does not enforce them
    itself (`parser`): control characters in the head and bytes past ASCII in the
    request line, which llhttp refuses and h11 lets through; two spaces in a row
    in the request line, which h11 refuses and llhttp lets through.
    """

    __slots__ = (
        "_max_head",
        "_max_line",
        "_max_headers",
        "_scanned",
        "line_end",
        "_check_bytes",
        "_check_spaces",
    )

    def __init__(self, config: ServerConfig, parser: str = "h11") -> None:
        self._max_head = config.max_head_size
        self._max_line = config.max_request_line
        self._max_headers = config.max_headers
        self._scanned = 0
        #: Where the request line of the head being scanned ends (-1: not seen yet).
        self.line_end = -1
        self._check_bytes = parser == "h11"
        self._check_spaces = parser != "h11"

    def reset(self) -> None:
        """Start over for the next head."""
        self._scanned = 0
        self.line_end = -1

    def scan(self, buffer: bytes | bytearray) -> int:
        """`reset` then `feed`: the first bytes of a new head (often the whole head and more)."""
        self.line_end = -1
        end = buffer.find(_TERMINATOR)
        if end < 0:
            self._scanned = 0
            return self.feed(buffer)
        # The usual case: a whole head in the first read, checked here in one go (each
        # call saved matters: this runs for every request).
        size = end + 4
        head = buffer if size == len(buffer) else buffer[:size]
        lines = head.count(b"\r\n")
        if head.count(b"\n") != lines:
            raise Rejected(400, "line endings must be CRLF")
        line_end = head.find(b"\r\n")
        if line_end > self._max_line:
            raise Rejected(414, "request line too long")
        self.line_end = line_end
        self._scanned = size
        if size > self._max_head:
            raise Rejected(431, "request head too large")
        self._check_head(head, lines)
        return size

    def feed(self, buffer: bytes | bytearray) -> int:
        """Scan `buffer` (the bytes received since the head began); see the class docstring."""
        start = self._scanned
        size = len(buffer)
        if start:
            end = buffer.find(_TERMINATOR, start - 3 if start > 3 else 0)
        else:
            end = buffer.find(_TERMINATOR)
        stop = size if end < 0 else end + 4
        # Bare LF: every "\n" in the new region must be the end of a "\r\n".
        lf = buffer.count(b"\n", start, stop)
        if lf and lf != buffer.count(b"\r\n", start - 1 if start else 0, stop):
            raise Rejected(400, "line endings must be CRLF")
        if self.line_end < 0:
            line_end = buffer.find(b"\r\n", 0, stop)
            if line_end < 0:
                if stop > self._max_line:
                    raise Rejected(414, "request line too long")
            else:
                if line_end > self._max_line:
                    raise Rejected(414, "request line too long")
                self.line_end = line_end
        self._scanned = stop
        if end < 0:
            if size > self._max_head:
                raise Rejected(431, "request head too large")
            return -1
        if stop > self._max_head:
            raise Rejected(431, "request head too large")
        self._check_head(buffer[:stop])
        return stop

    def _check_head(self, head: bytes | bytearray, lines: int = -1) -> None:
        # Each test here costs about as much as a method call: few, and the cheap first.
        if _FOLD(head) is not None:  # obsolete line folding
            raise Rejected(400, "obsolete line folding is not accepted")
        if self._check_bytes:
            if len(head.translate(None, _CONTROLS)) != len(head) or (
                not head.isascii() and not head[: self.line_end].isascii()
            ):
                raise Rejected(400, "control or non-ASCII characters in the head")
        elif self._check_spaces and head.find(b"  ", 0, self.line_end) >= 0:
            raise Rejected(400, "two spaces in a row in the request line")
        if (lines if lines >= 0 else head.count(b"\r\n")) - 2 > self._max_headers:
            raise Rejected(431, "too many header fields")


def check_request(
    headers: Any, http_version: bytes, method: bytes = b"GET"
) -> tuple[int | None, bool]:
    """Refuse a parsed head h11 accepted but we will not serve (see the module docstring).

    Args:
        headers: The (lower-case name, value) pairs of the request.
        http_version: b"1.1" or b"1.0".
        method: The request method.

    Returns:
        The declared Content-Length (h11 has checked it is one number) or None,
        and whether the body is chunked.
    """
    fields = dict(headers)
    if (
        len(fields) == len(headers)
        and http_version == b"1.1"
        and b"host" in fields
        and b"transfer-encoding" not in fields
        and method in KNOWN_METHODS
    ):
        # The usual request, which nothing below refuses but a bad Content-Length:
        # its answer in a few look-ups of a dict built in C. Anything else, faulty or
        # not, takes the general path, which decides.
        value = fields.get(b"content-length")
        if value is None:
            return None, False
        if value.isdigit():
            return int(value), False
    # The order of the checks is the order in which h11 finds the same faults.
    if http_version != b"1.1" and http_version != b"1.0":
        # llhttp reads a request line without a version as HTTP/0.9: malformed here.
        if http_version[:1] >= b"2":
            raise Rejected(505, "only HTTP/1.1 and HTTP/1.0 are served")
        raise Rejected(400, "unsupported HTTP version")
    hosts = 0
    length: int | None = None
    codings: list[bytes] | None = None
    if len(fields) == len(headers):
        # No name given twice, as in nearly every request: the same checks on a dict
        # built in C rather than in a Python loop over the fields (a tenth of the
        # server's own work per request).
        hosts = 1 if b"host" in fields else 0
        value = fields.get(b"content-length")
        if value is not None:
            if not value.isdigit():
                raise Rejected(400, "invalid Content-Length")
            length = int(value)
        value = fields.get(b"transfer-encoding")
        if value is not None:
            codings = [coding.strip().lower() for coding in value.split(b",")]
    else:
        for name, value in headers:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                # h11 has checked the digits; llhttp checks them too, but `int()` is laxer
                # ("+5", "5_0", " 5"), so anything but plain digits is refused here too.
                if length is not None or not value.isdigit():
                    raise Rejected(400, "invalid Content-Length")
                length = int(value)
            elif name == b"transfer-encoding":
                if codings is None:
                    codings = []
                codings.extend(coding.strip().lower() for coding in value.split(b","))
    if hosts != 1 and http_version == b"1.1":
        raise Rejected(400, "HTTP/1.1 needs exactly one Host header")
    chunked = codings is not None
    if codings is not None:
        if codings != [b"chunked"]:  # RFC 9112 §6.1: an unknown coding is 501
            raise Rejected(501, "only Transfer-Encoding: chunked is supported")
        if length is not None:
            raise Rejected(400, "both Content-Length and Transfer-Encoding")
        if http_version == b"1.0":
            raise Rejected(400, "Transfer-Encoding is not allowed in HTTP/1.0")
    if method not in KNOWN_METHODS:
        raise Rejected(501 if TOKEN.fullmatch(method) else 400, "unknown method")
    return length, chunked


def check_target(target: bytes) -> bytes:
    """The path and query of a request target that is not origin-form (RFC 9112 §3.2).

    Accepts absolute-form (`http://host/p?q`) and asterisk-form (`*`); anything
    else (authority-form outside CONNECT, a bare `?x`) raises `Rejected` (400).
    """
    if target == b"*":
        return target
    scheme_end = target.find(b"://")
    if scheme_end > 0 and TOKEN.fullmatch(target, 0, scheme_end):
        path_at = target.find(b"/", scheme_end + 3)
        return target[path_at:] if path_at >= 0 else b"/"
    raise Rejected(400, "malformed request target")


def check_chunk(h11_connection: Any, allowance: int) -> None:
    """Refuse a chunk whose declared size is absurd, before waiting for its bytes.

    h11 keeps the size of the chunk being read on its private chunked reader; if
    that attribute ever goes away this check becomes a no-op and the body limit
    still applies byte by byte.

    Raises:
        Rejected: 400 for a size past `MAX_CHUNK_SIZE`.
        ChunkOverLimit: the chunk alone would exceed `allowance`.
    """
    remaining = getattr(getattr(h11_connection, "_reader", None), "_bytes_in_chunk", 0)
    if type(remaining) is int and remaining:
        if remaining > MAX_CHUNK_SIZE:
            raise Rejected(400, "chunk size too large")
        if remaining > allowance:
            raise ChunkOverLimit()


class ChunkOverLimit(Exception):
    """A declared chunk size alone goes past the body limit (answered 413 by the caller)."""


_HEX = frozenset(b"0123456789abcdefABCDEF")
_SIZE, _LINE, _DATA, _TRAILER, _TRAILER_LINE, _FINAL_LF, _ENDED = range(7)


class ChunkWatcher:
    """Follows a chunked body's framing just far enough to see its sizes and where it ends.

    For a parser that neither exposes the chunk size it read nor stops at the end
    of a message (httptools): `feed` is given each read of the body before the
    parser, and returns where in it the body ends (-1: not in it), so the bytes
    after it can be kept for the next request. It records the sum of the declared
    sizes (`declared`, checked against the body limit as `check_chunk` does on
    the h11 path) and whether one size was absurd (`absurd`). It validates
    nothing else: the parser does, and its verdict comes first.
    """

    __slots__ = ("_state", "_size", "_skip", "declared", "absurd")

    def __init__(self) -> None:
        self._state = _SIZE
        self._size = 0
        self._skip = 0
        #: The sum of the chunk sizes declared so far.
        self.declared = 0
        #: Whether a declared size went past `MAX_CHUNK_SIZE`.
        self.absurd = False

    def feed(self, data: bytes) -> int:
        """Follow `data`; return the offset just past the body's end in it, or -1."""
        index, end = 0, len(data)
        while index < end:
            state = self._state
            if state == _DATA:
                taken = min(self._skip, end - index)
                index += taken
                self._skip -= taken
                if not self._skip:
                    self._state = _SIZE
            elif state == _SIZE:
                byte = data[index]
                if byte in _HEX:
                    self._size = self._size * 16 + int(chr(byte), 16)
                    if self._size > MAX_CHUNK_SIZE:
                        self.absurd = True
                        self._state = _ENDED
                        return -1
                    index += 1
                else:
                    self.declared += self._size
                    self._state = _LINE
            elif state == _LINE:  # the rest of a chunk-size line (extensions)
                newline = data.find(b"\n", index)
                if newline < 0:
                    return -1
                index = newline + 1
                if self._size:
                    self._skip = self._size + 2  # the data and its CRLF
                    self._size = 0
                    self._state = _DATA
                else:
                    self._state = _TRAILER
            elif state == _TRAILER:  # the start of a trailer line, or of the final CRLF
                if data[index] == 13:
                    self._state = _FINAL_LF
                    index += 1
                else:
                    self._state = _TRAILER_LINE
            elif state == _TRAILER_LINE:
                newline = data.find(b"\n", index)
                if newline < 0:
                    return -1
                index = newline + 1
                self._state = _TRAILER
            elif state == _FINAL_LF:
                self._state = _ENDED
                return index + 1
            else:
                return -1
        return -1


#: The clean-head matchers made so far, by (longest request line, most header fields).
_CLEAN_HEADS: dict[tuple[int, int], Any] = {}


def clean_head(config: ServerConfig) -> Any:
    """A compiled `match` that finds a request head passing every `HeadScanner` check at once.

    For the httptools connection: when a whole head sits at the start of a buffer
    and is plainly clean, one regular-expression match in C proves what `scan`
    and `_check_head` check one by one in Python, and reads the request line:
    groups (method, target, version), the match itself ending just past the
    head's blank line. The request line is at most `max_request_line` bytes
    (else 414) with single spaces between its three parts; every line ends in
    CRLF (no bare LF); no header line starts with whitespace (no obsolete line
    folding); at most `max_headers` header fields (else 431). The size cap
    (431) is left to the caller: one comparison with `match.end()`.

    A head it does not match is not refused for that: it takes `HeadScanner`,
    which finds the right answer. So the checks, and the answers, stay the
    scanner's; this only skips them for the heads that pass them all.
    """
    key = (config.max_request_line, config.max_headers)
    match = _CLEAN_HEADS.get(key)
    if match is None:
        pattern = b"".join(
            (
                rb"(?=[^\r\n]{0,%d}\r\n)" % config.max_request_line,
                rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+) ([^ \r\n]+) HTTP/(1\.[01])\r\n",
                rb"(?:[^ \t\r\n][^\r\n]*\r\n){0,%d}\r\n" % config.max_headers,
            )
        )
        match = _CLEAN_HEADS[key] = re.compile(pattern).match
    return match
