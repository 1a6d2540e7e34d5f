"""Reason phrases for status codes, from the standard library's table."""

from __future__ import annotations

from http import HTTPStatus

_PHRASES = {status.value: status.phrase for status in HTTPStatus}


def reason_phrase(status_code: int) -> str:
    """The standard reason phrase for `status_code`, or "" when there is none."""
    return _PHRASES.get(status_code, "")


def allows_body(status_code: int) -> bool:
    """Whether a response with this status may carry a body (RFC 9110, section 6.4.1)."""
    return not (100 <= status_code < 200 or status_code in (204, 304))
