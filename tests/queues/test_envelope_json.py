"""`Envelope.to_json` is `json.dumps(envelope.to_dict())`, to the character."""

from __future__ import annotations

import json
from typing import Any

import pytest

from velocipy.tasks import Envelope


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"args": ["a@example.com", 3, 2.5, None, True], "kwargs": {"n": [1, {"x": "y"}]}},
        {"timeout": 1.5, "queue": "web", "priority": 7, "delay": 0.0},
        {"timeout": 2, "delay": float("inf"), "context": {"velocipy.request_id": "r-1"}},
        {"name": 'quotes " and \\ and \u00e9 and \u2603', "route": "POST /caf\u00e9"},
    ],
)
def test_the_template_writes_what_json_dumps_writes(options: dict[str, Any]) -> None:
    fields = {"id": "id-1", "task": "tests.queues.jobs:record", "name": "record", **options}
    envelope = Envelope(**fields)
    assert envelope.to_json() == json.dumps(envelope.to_dict())
    assert Envelope.from_dict(json.loads(envelope.to_json())) == envelope
