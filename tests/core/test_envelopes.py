"""Envelopes, purely: what may be queued, how arguments become JSON and come back."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import os
import uuid
from typing import Any

import pydantic
import pytest

from velocipy.core import Envelope, TaskNotPortable
from velocipy.core._envelopes import (
    engine_batches,
    new_envelope_id,
    rebuild_arguments,
    task_path,
    to_json,
)


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    when: datetime.date


def target(
    point: Point,
    ids: list[uuid.UUID],
    price: decimal.Decimal | None,
    *rest: Color,
    at: datetime.datetime,
    **extra: datetime.time,
) -> None:
    pass


def test_arguments_go_to_json_and_come_back_as_the_annotations_say() -> None:
    args = [
        Point(1, datetime.date(2024, 2, 3)),
        [uuid.UUID(int=1)],
        decimal.Decimal("1.10"),
        Color.RED,
    ]
    kwargs = {"at": datetime.datetime(2024, 1, 1, 12), "t": datetime.time(9, 5)}
    wire = json.loads(json.dumps((to_json(args), to_json(kwargs))))
    assert wire[0] == [{"x": 1, "when": "2024-02-03"}, [str(uuid.UUID(int=1))], "1.10", "red"]
    rebuilt_args, rebuilt_kwargs = rebuild_arguments(target, *wire)
    assert list(rebuilt_args) == args and rebuilt_kwargs == kwargs


class User(pydantic.BaseModel):
    name: str
    joined: datetime.date


def welcome(user: User) -> None:
    pass


def test_pydantic_models_travel_as_their_json() -> None:
    data = to_json(User(name="ann", joined=datetime.date(2024, 1, 2)))
    assert data == {"name": "ann", "joined": "2024-01-02"}
    (user,), _ = rebuild_arguments(welcome, [data], {})
    assert user == User(name="ann", joined=datetime.date(2024, 1, 2))


@pytest.mark.parametrize(
    ("value", "complaint"),
    [(object(), "object"), ({1: 2}, "non-string key"), ([b"x"], "bytes"), ({1.5}, "set")],
)
def test_what_is_not_json_is_refused_by_name(value: Any, complaint: str) -> None:
    with pytest.raises(TaskNotPortable, match=complaint):
        to_json(value, "argument")


def test_only_functions_importable_by_name_may_travel() -> None:
    assert task_path(target) == f"{__name__}:target"
    assert task_path(Point.__init__) == f"{__name__}:Point.__init__"
    with pytest.raises(TaskNotPortable, match="lambda"):
        task_path(lambda: None)

    def local() -> None:
        pass

    with pytest.raises(TaskNotPortable, match="closure"):
        task_path(local)


def test_envelopes_round_trip_and_refuse_an_unknown_layout() -> None:
    envelope = Envelope(id="i", task="m:f", name="f", args=[1], queue="q", timeout=2.0)
    assert Envelope.from_dict(json.loads(json.dumps(envelope.to_dict()))) == envelope
    with pytest.raises(ValueError, match="unknown envelope version"):
        Envelope.from_dict({**envelope.to_dict(), "v": 99})


def test_a_batch_is_cut_where_queue_priority_or_delay_change() -> None:
    def envelope(i: int, queue: str | None = None, delay: float | None = None) -> Envelope:
        return Envelope(id=str(i), task="m:f", name="f", queue=queue, delay=delay)

    batches = engine_batches([envelope(1), envelope(2), envelope(3, "q"), envelope(4, delay=1)])
    assert [[e.id for e in batch] for batch in batches] == [["1", "2"], ["3"], ["4"]]


def _random_part(ident: str) -> str:
    return ident[:24]  # the last group counts ids: the rest is drawn per process


def test_envelope_ids_are_version_4_uuid_text_and_unique() -> None:
    ids = [new_envelope_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for ident in ids[:3] + ids[-3:]:
        parsed = uuid.UUID(ident)
        assert str(parsed) == ident  # the canonical text: Celery's task id as uuid4 gives it
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_child_makes_ids_its_parent_never_makes() -> None:
    parent = new_envelope_id()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only os._exit, never back into pytest
        try:
            os.write(writer, new_envelope_id().encode())
        finally:
            os._exit(0)
    os.close(writer)
    child = os.read(reader, 100).decode()
    os.close(reader)
    os.waitpid(pid, 0)
    assert uuid.UUID(child).version == 4
    assert _random_part(child) != _random_part(parent)  # drawn again: 74 random bits
    assert _random_part(new_envelope_id()) == _random_part(parent)  # the parent's stays
