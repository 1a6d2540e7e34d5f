"""Background-task semantics, which live only in the core: order, errors, naming."""

from __future__ import annotations

import functools
import logging
from typing import Any
from unittest.mock import MagicMock

import pytest

from tests.core.handdrive import head, perform, serve
from velocipy.core import Application, BackgroundTasks


async def async_task(log: list[str], name: str) -> None:
    log.append(name)


def failing_task(log: list[str], name: str) -> None:
    log.append(name)
    raise RuntimeError(f"{name} broke")


class CallableObject:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def __call__(self, name: str) -> None:
        self.log.append(name)


def test_tasks_run_in_order_failures_logged_rest_continue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Application()
    log: list[str] = []
    mock = MagicMock()

    @app.post("/x")
    def handler(tasks: BackgroundTasks) -> str:
        tasks.add_task(async_task, log, "one")
        tasks.add_task(failing_task, log, "two")
        tasks.add_task(functools.partial(async_task, log), name="three")
        tasks.add_task(CallableObject(log), "four")
        tasks.add_task(mock, "five", flag=True)
        return "ok"

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        out = serve(app, "POST", "/x")
    assert out.status == 200
    assert log == ["one", "two", "three", "four"]
    mock.assert_called_once_with("five", flag=True)
    [record] = caplog.records
    assert record.name == "velocipy"
    assert "tests.core.test_tasks.failing_task" in record.getMessage()
    assert "POST /x" in record.getMessage()
    assert record.exc_info is not None and "two broke" in caplog.text
    assert record.task_name == "tests.core.test_tasks.failing_task"  # type: ignore[attr-defined]


def test_task_kinds_are_detected_once() -> None:
    tasks = BackgroundTasks()
    assert tasks.add_task(async_task, [], "a").is_async
    assert tasks.add_task(functools.partial(async_task, [])).is_async
    assert tasks.add_task(CallableObject([])).is_async
    assert not tasks.add_task(failing_task, [], "b").is_async
    assert not tasks.add_task(MagicMock()).is_async
    assert len(tasks) == 5
    assert "async_task" in repr(tasks)


def test_add_task_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        BackgroundTasks().add_task("not callable")  # type: ignore[arg-type]


def test_task_keyword_arguments_named_like_options_reach_the_function() -> None:
    app = Application()
    seen: dict[str, object] = {}

    def record(*, name: str, timeout: int) -> None:
        seen.update(name=name, timeout=timeout)

    @app.post("/x")
    def handler(tasks: BackgroundTasks) -> None:
        tasks.add_task(record, name="n", timeout=3)

    serve(app, "POST", "/x")
    assert seen == {"name": "n", "timeout": 3}


def test_an_exchange_with_tasks_lets_go_of_the_request_once_its_response_is_out() -> None:
    # Its tasks may wait (a queue under WSGI) and run for long (a thousand in
    # flight): the request body and the parsed model are the handler's
    # business, and no longer held once the response is handed over.
    import dataclasses
    import weakref

    from velocipy.core import Call, Done, ReadBody, Respond

    @dataclasses.dataclass
    class Signup:
        email: str

    app = Application()
    refs: list[weakref.ref[Any]] = []
    seen: list[bool] = []

    def check() -> None:
        seen.append(all(ref() is None for ref in refs))

    @app.post("/signup")
    def signup(data: Signup, tasks: BackgroundTasks) -> dict[str, str]:
        refs.append(weakref.ref(data))
        tasks.add_task(check)
        return {"email": data.email}

    exchange = app.exchange(head("POST", "/signup"))
    effect = exchange.start()
    while not isinstance(effect, Done):
        if isinstance(effect, ReadBody):
            effect = exchange.send(b'{"email": "a@b.c"}')
        elif isinstance(effect, Respond):
            assert effect.status == 200
            assert [ref() for ref in refs] == [None]  # while the tasks wait
            effect = exchange.send(None)
        else:
            assert isinstance(effect, Call)
            call, effect = effect, None
            effect = exchange.send(perform(call))
            del call
    assert seen == [True]
