"""Exceptions, sorted by whose mistake they report.

- `LocalProtocolError`: an adapter drove an exchange out of order (our bug or theirs).
- `DeclarationError`: a route or dependency was declared wrongly; raised at declaration.
- `HTTPException`: raised by user code to answer with an error status.
- `RequestValidationError`: the client's request did not fit the handler's signature.
- `ResponseValidationError`: a handler's return value did not fit its response model
  (our mistake, not the client's: answered with a logged 500).
- `ClientError` and its subclasses: the client sent something unusable (a body too
  large, invalid JSON); each carries the status code that answers it.
- `ClientDisconnected`: thrown in by an adapter when the peer went away.
- `TaskTimedOut`: thrown in by an adapter when a task overran its timeout.
- `ContainedBaseException`: thrown in by an adapter when user code called after the
  response raised a `BaseException` (`SystemExit`, `KeyboardInterrupt`, …) that is
  not the adapter's own cancellation: a failure of that call, not a stop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class LocalProtocolError(RuntimeError):
    """An adapter called the exchange in a way its protocol does not allow."""


class DeclarationError(TypeError):
    """A route, parameter or dependency cannot work as declared."""


class HTTPException(Exception):
    """Raise from a handler or dependency to answer with `status_code`.

    Args:
        status_code: The HTTP status to answer with.
        detail: Any JSON-serialisable value, sent as `{"detail": detail}`.
        headers: Extra response headers (e.g. `WWW-Authenticate`).
    """

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if detail is None:
            from ._status import reason_phrase

            detail = reason_phrase(status_code)
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers) if headers else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class RequestValidationError(Exception):
    """The request did not match the handler's declared parameters (answered with 422)."""

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        super().__init__(errors)
        self._errors = list(errors)

    def errors(self) -> list[dict[str, Any]]:
        """The problems found, FastAPI-style: `{"loc": [...], "msg": ..., "type": ...}`."""
        return self._errors


class ResponseValidationError(Exception):
    """A handler returned a value its response model refuses; answered with a logged 500.

    The value is never sent: a response model is also what keeps fields the
    model does not declare from leaving the server.
    """

    def __init__(
        self, errors: Sequence[dict[str, Any]], *, body: Any = None, route: str = ""
    ) -> None:
        super().__init__(errors)
        self._errors = list(errors)
        #: The value the handler returned.
        self.body = body
        #: The route whose handler returned it, e.g. "GET /users/{user_id}".
        self.route = route

    def errors(self) -> list[dict[str, Any]]:
        """The problems found, pydantic-style, each `loc` starting with "response"."""
        return self._errors

    def __str__(self) -> str:
        lines = [f"{len(self._errors)} validation error(s) in the response of {self.route}:"]
        lines += [f"  {error}" for error in self._errors]
        return "\n".join(lines)


class ClientError(Exception):
    """The client sent something we cannot use; `status_code` is the answer."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BodyTooLarge(ClientError):
    """The request body is larger than the configured limit."""

    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body is larger than {limit} bytes")
        self.limit = limit


class MalformedBody(ClientError):
    """The request body could not be decoded (invalid JSON, bad encoding, nesting too deep)."""


class InvalidJSON(MalformedBody):
    """The body is not JSON: `msg` is the decoder's complaint, `position` where it arose.

    `Request.json()` answers it with 400 like any `MalformedBody`; JSON body
    parameters answer it with FastAPI's 422 `json_invalid` error.
    """

    def __init__(self, detail: str, msg: str, position: int) -> None:
        super().__init__(detail)
        self.msg = msg
        self.position = position


class TaskTimedOut(Exception):
    """Thrown into an exchange by an adapter when a task's `Call` ran past its timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the task ran longer than its {timeout}s timeout")
        self.timeout = timeout


class ClientDisconnected(Exception):
    """The client went away before the request was read or the response was sent."""


class ContainedBaseException(Exception):
    """A `BaseException` raised by user code, carried into the exchange as a failure.

    A task that calls `sys.exit()`, raises `KeyboardInterrupt`, or raises a
    `BaseException` subclass of its own has failed; it has not stopped the
    server. Drivers throw this wrapper for such an exception (the original is
    `.error`, and also `__cause__`, so a logged traceback shows it), while a real
    interruption of the driver (its cancellation at shutdown) is thrown in as
    itself. The core can then tell the two apart without knowing which
    cancellation exception the adapter's event loop uses.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
        self.error = error
        self.__cause__ = error


class ResponseDiscarded(Exception):
    """Thrown into an exchange whose response was dropped on the way out.

    Its tasks are then abandoned and logged with `reason`, never run.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResponseReplaced(ResponseDiscarded):
    """Thrown into an exchange whose response a middleware replaced with an error response
    (it failed after `call_next`) once that error response has been delivered.

    The request failed after all: its tasks follow the error path, as if the handler had
    raised (`run_on="error"` and `"always"` run, `"success"` ones are skipped).
    """
