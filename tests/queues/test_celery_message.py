"""The Celery message the Redis fast path writes: the same whatever the path that wrote it.

A one-task message is joined from text cached per task, route and queue (`_Shape`);
a message of several tasks, or with an id JSON must escape, is written in full. Both
must be what `send_task` would write, with the body as JSON text in a string (no
`body_encoding`), which kombu's transport hands to the worker as it is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery import Celery

from velocipy.contrib.celery import CeleryBackend
from velocipy.core._envelopes import new_envelope_id
from velocipy.tasks import Envelope

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

CASES: list[dict[str, Any]] = [
    {"args": ["a@example.com"], "route": "POST /signup", "method": "POST", "queue": "web"},
    {
        "name": 'quotes " and \\ and \u00e9 and \u2603',
        "args": ["\u00e9", 1, 2.5, None, True, {"x": '"y"'}],
        "kwargs": {"k": [1, "\\"]},
        "route": "POST /caf\u00e9",
        "method": "POST",
        "queue": "web",
        "timeout": 1.5,
        "priority": 3,
        "delay": 2.0,
        "context": {"velocipy.request_id": 'r"1'},
    },
    {"id": 'an id with "quotes"', "queue": None},
    {},
]


@pytest.fixture(scope="module")
def backend() -> CeleryBackend:
    # Nothing connects: the message is built without a broker.
    return CeleryBackend(Celery("velocipy-tests-message", broker="redis://127.0.0.1:1/0"))


@pytest.mark.parametrize("fields", CASES)
@pytest.mark.parametrize(("queue", "priority"), [("web", 0), ("other queue", 5)])
def test_a_message_is_the_batch_as_json_whatever_path_wrote_it(
    backend: CeleryBackend, fields: dict[str, Any], queue: str, priority: int
) -> None:
    envelope = Envelope(
        **{"id": new_envelope_id(), "task": "tests.queues.jobs:record", "name": "record", **fields}
    )
    messages = []
    for batch in ([envelope], [envelope], [envelope, envelope]):  # twice: the cached shape
        wire = backend._message(batch, queue, priority, '"gen1@host"', b'"tag.1"')
        assert wire.isascii()
        message = json.loads(wire)
        assert message["body"] == json.dumps([[[e.to_dict() for e in batch]], {}, EMBED])
        headers, properties = message["headers"], message["properties"]
        assert headers["id"] == headers["root_id"] == properties["correlation_id"] == envelope.id
        assert headers["origin"] == "gen1@host" and properties["delivery_tag"] == "tag.1"
        assert (headers.pop("eta") is None) == (not envelope.delay)  # a time: not compared
        assert properties["delivery_info"] == {"exchange": "", "routing_key": queue}
        assert properties["priority"] == priority and properties["body_encoding"] is None
        messages.append(message)
    # The same fields on every path, the display text of `argsrepr` aside.
    one, again, two = messages
    assert one == again
    assert one.keys() == two.keys() and one["headers"].keys() == two["headers"].keys()
    assert one["properties"].keys() == two["properties"].keys()
