"""The WSGI baseline: a hand-written PEP 3333 callable; the signup task runs from close()."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

from bench.apps._common import current_owner, record_signup, valid_signup

_STATUS = {200: "200 OK", 404: "404 Not Found", 422: "422 Unprocessable Entity"}


class BodyThenTask:
    """A one-chunk response body whose close() (called by the server once sent) runs a task."""

    def __init__(self, body: bytes, task: Callable[..., Any], *args: Any) -> None:
        self.body = body
        self.task = task
        self.args = args

    def __iter__(self) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        self.task(*self.args)


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    task_email = None
    status = 200
    if path == "/hello" and method == "GET":
        payload: Any = {"message": "hello"}
    elif path == "/signup" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            data = json.loads(environ["wsgi.input"].read(length))
        except ValueError:
            data = None
        if valid_signup(data):
            payload = {"status": "ok", "email": data["email"]}
            task_email = data["email"]
        else:
            status, payload = 422, {"detail": "invalid body"}
    elif path.startswith("/items/") and method == "GET":
        try:
            item_id = int(path[len("/items/") :])
        except ValueError:
            status, payload = 422, {"detail": "item_id must be an integer"}
        else:
            q = parse_qs(environ.get("QUERY_STRING", "")).get("q", [None])[0]
            payload = {"item_id": item_id, "q": q, "owner": current_owner()}
    else:
        status, payload = 404, {"detail": "Not Found"}
    body = json.dumps(payload).encode()
    start_response(
        _STATUS[status],
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    if task_email is not None:
        return BodyThenTask(body, record_signup, task_email)
    return [body]
