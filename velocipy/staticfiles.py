"""`StaticFiles`: the files of a directory, served under a mount (`app.mount("/static", ...)`).

Mounted, it is served by the core on every driver (the built-in server, ASGI,
WSGI, the TestClient): inside, it is a one-route application whose sync handler
finds the file, in a worker thread under the async servers, and answers with a
`FileResponse`, so the body is streamed from disk in chunks, `Range` is
answered with 206, and `ETag`/`Last-Modified` are sent; a request whose
`If-None-Match` or `If-Modified-Since` still names the file gets 304.

No request escapes the directory: the path is split on "/" and normalised, and
the real path of what it names (symlinks resolved, unless `follow_symlink`)
must lie inside the directory's real path, so `..` (however it was encoded),
absolute paths and symlinks pointing outside all answer 404.
Starlette's `StaticFiles` is the reference for the options and answers.
"""

from __future__ import annotations

import os
import stat
from email.utils import parsedate_to_datetime

from velocipy.core import Application, Exchange, HTTPException, Request, RequestHead, Response
from velocipy.responses import FileResponse, RedirectResponse

__all__ = ["StaticFiles"]

#: The headers a 304 keeps from the full answer (RFC 9110, section 15.4.5).
_NOT_MODIFIED_KEEPS = (b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary")


class StaticFiles:
    """Serve the files under `directory`; mount it: `app.mount("/static", StaticFiles(...))`.

    Args:
        directory: The folder to serve.
        html: HTML mode: a folder's `index.html` answers for the folder (a path
            without its trailing slash is redirected to it), and `404.html`, if
            there is one, answers every path that names nothing.
        check_dir: Raise `RuntimeError` now if `directory` does not exist.
        follow_symlink: Serve symlinks that point outside `directory` (off by
            default: the link's target must be inside).

    Raises:
        RuntimeError: `check_dir` is set and `directory` is not a folder.
    """

    def __init__(
        self,
        *,
        directory: str | os.PathLike[str],
        html: bool = False,
        check_dir: bool = True,
        follow_symlink: bool = False,
    ) -> None:
        self.directory = os.fspath(directory)
        self.html = html
        self.follow_symlink = follow_symlink
        if check_dir and not os.path.isdir(self.directory):
            raise RuntimeError(f"StaticFiles directory {self.directory!r} does not exist")
        self._root = self._resolve(self.directory)
        # One catch-all route for GET and HEAD: routing, the 405 for other methods, the
        # error answers and the worker thread for the sync lookup all come from the core.
        core = self._core = Application(max_tasks_in_flight=None)
        core.add_api_route("/{path:path}", self._serve, methods=["GET", "HEAD"])

    def exchange(self, head: RequestHead) -> Exchange:
        """Serve one request (the path under the mount); called by the app mounting it."""
        return self._core.exchange(head)

    def _resolve(self, path: str) -> str:
        return os.path.abspath(path) if self.follow_symlink else os.path.realpath(path)

    def _serve(self, request: Request) -> Response:
        path = request.path
        found = self.lookup(path)
        if found is not None:
            full, info = found
            if stat.S_ISREG(info.st_mode):
                return self._file(request, full, info)
            if stat.S_ISDIR(info.st_mode) and self.html:
                index = self.lookup(path.rstrip("/") + "/index.html")
                if index is not None and stat.S_ISREG(index[1].st_mode):
                    if not path.endswith("/"):
                        # `/docs` -> `/docs/`, so that the page's relative links resolve.
                        return RedirectResponse(_with_slash(request), 307)
                    return self._file(request, *index)
        if self.html:
            missing = self.lookup("/404.html")
            if missing is not None and stat.S_ISREG(missing[1].st_mode):
                return FileResponse(missing[0], 404, stat_result=missing[1])
        raise HTTPException(404, "Not Found")

    def lookup(self, path: str) -> tuple[str, os.stat_result] | None:
        """The file or folder `path` names inside the directory, with its `stat`; None if it
        names nothing there (or something outside it)."""
        parts = [part for part in path.split("/") if part]
        joined = os.path.normpath(os.path.join(self.directory, *parts))
        try:
            full = self._resolve(joined)
            if os.path.commonpath([full, self._root]) != self._root:
                return None  # out of the directory: `..`, or a symlink pointing away
            return full, os.stat(full)
        except (OSError, ValueError):  # missing, unreadable, a NUL byte in the name
            return None

    def _file(self, request: Request, full: str, info: os.stat_result) -> Response:
        response = FileResponse(full, stat_result=info, content_disposition_type="inline")
        if _not_modified(request, response):
            kept = [(n, v) for n, v in response.raw_headers if n in _NOT_MODIFIED_KEEPS]
            not_modified = Response(None, 304)
            not_modified.raw_headers = kept
            return not_modified
        return response

    def __repr__(self) -> str:
        return f"StaticFiles(directory={self.directory!r}, html={self.html})"


def _with_slash(request: Request) -> str:
    url = request.url
    base, question, query = url.partition("?")
    return base + "/" + question + query


def _not_modified(request: Request, response: Response) -> bool:
    """Whether the client's copy is still the file (RFC 9110, sections 13.1.2 and 13.1.3).

    `If-None-Match` decides when it is present; `If-Modified-Since` only otherwise.
    """
    headers = request.headers
    etag = response.headers.get("etag")
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return etag is not None and etag.removeprefix("W/") in tags
    if_modified_since = headers.get("if-modified-since")
    last_modified = response.headers.get("last-modified")
    if if_modified_since is None or last_modified is None:
        return False
    try:
        return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
