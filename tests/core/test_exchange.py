"""The exchange state machine, driven by hand: every effect, every error path, misuse."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.handdrive import head, perform, serve
from velocipy.core import (
    Application,
    BackgroundTasks,
    Call,
    ClientDisconnected,
    ContainedBaseException,
    Done,
    HTTPException,
    LocalProtocolError,
    Phase,
    ReadBody,
    Respond,
)


def make_app(log: list[str]) -> Application:
    app = Application(max_body_size=64)

    @app.get("/plain")
    def plain() -> dict[str, str]:
        return {"hello": "world"}

    @app.post("/body")
    async def body(data: dict[str, Any], tasks: BackgroundTasks) -> dict[str, Any]:
        tasks.add_task(log.append, "first")
        tasks.add_task(log.append, "second")
        return data

    @app.post("/crash")
    def crash(tasks: BackgroundTasks) -> None:
        tasks.add_task(log.append, "never")
        raise RuntimeError("boom")

    @app.post("/conflict")
    def conflict(tasks: BackgroundTasks) -> None:
        tasks.add_task(log.append, "never")
        raise HTTPException(409, "taken", headers={"X-Why": "dup"})

    return app


def test_effects_in_order_for_a_request_with_body_and_tasks() -> None:
    log: list[str] = []
    app = make_app(log)
    exchange = app.exchange(head("POST", "/body"))
    assert exchange.phase is Phase.IDLE
    effect = exchange.start()
    assert effect == ReadBody(64)
    assert exchange.phase is Phase.READING
    effect = exchange.send(b'{"a": 1}')
    assert isinstance(effect, Call) and effect.purpose == "handler" and effect.is_async
    effect = exchange.send(perform(effect))
    assert isinstance(effect, Respond)
    assert effect.status == 200 and effect.body == b'{"a":1}'
    assert [t.name for t in effect.tasks] == ["list.append", "list.append"]
    assert log == []  # nothing runs before the response is reported sent
    effect = exchange.send(None)
    assert isinstance(effect, Call) and effect.purpose == "task"
    effect = exchange.send(perform(effect))
    assert log == ["first"]
    effect = exchange.send(perform(effect))
    assert effect == Done() and log == ["first", "second"]
    assert exchange.phase is Phase.DONE


def test_no_body_read_when_no_parameter_needs_it() -> None:
    outcome = serve(make_app([]), "GET", "/plain")
    assert not any(isinstance(e, ReadBody) for e in outcome.effects)
    assert outcome.json() == {"hello": "world"}
    assert outcome.headers["content-length"] == str(len(outcome.respond.body))


def test_handler_crash_gives_500_without_details_and_runs_no_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        outcome = serve(make_app(log), "POST", "/crash")
    assert outcome.status == 500
    assert outcome.json() == {"detail": "Internal Server Error"}
    assert isinstance(outcome.respond.error, RuntimeError)
    assert outcome.respond.tasks == ()
    assert log == []
    assert "Exception in handler for POST /crash" in caplog.text
    assert "boom" in caplog.text  # the traceback is logged, never sent


def test_http_exception_keeps_status_detail_headers_and_runs_no_task() -> None:
    log: list[str] = []
    outcome = serve(make_app(log), "POST", "/conflict")
    assert outcome.status == 409
    assert outcome.json() == {"detail": "taken"}
    assert outcome.headers["x-why"] == "dup"
    assert log == [] and outcome.respond.error is None


def test_body_too_large_is_413_and_the_handler_never_runs() -> None:
    log: list[str] = []
    outcome = serve(make_app(log), "POST", "/body", body=b'{"a": "' + b"x" * 100 + b'"}')
    assert outcome.status == 413
    assert "64" in outcome.json()["detail"]
    assert outcome.purposes() == []


def test_client_gone_while_reading_ends_the_exchange_quietly() -> None:
    exchange = make_app([]).exchange(head("POST", "/body"))
    assert exchange.start() == ReadBody(64)
    with pytest.raises(ClientDisconnected):
        exchange.throw(ClientDisconnected())
    assert exchange.phase is Phase.DONE


def test_undelivered_response_abandons_tasks_and_logs_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        outcome = serve(make_app(log), "POST", "/body", body=b"{}", delivered=False)
    assert outcome.status == 200
    assert log == []
    abandoned = [r for r in caplog.records if "abandoned" in r.getMessage()]
    assert len(abandoned) == 2
    assert all("POST /body" in r.getMessage() for r in abandoned)


def test_interruption_during_tasks_logs_the_interrupted_and_the_abandoned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    exchange = make_app(log).exchange(head("POST", "/body"))
    exchange.start()
    effect = exchange.send(b"{}")
    respond = exchange.send(perform(effect))
    assert isinstance(respond, Respond)
    first_task = exchange.send(None)
    assert isinstance(first_task, Call)

    class Cancelled(BaseException):
        pass

    with caplog.at_level(logging.WARNING, logger="velocipy"), pytest.raises(Cancelled):
        exchange.throw(Cancelled())
    messages = [r.getMessage() for r in caplog.records]
    assert any("interrupted (Cancelled)" in m for m in messages)
    assert sum("abandoned" in m for m in messages) == 1
    assert exchange.phase is Phase.DONE


def test_a_contained_base_exception_fails_its_task_and_the_next_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What a driver throws in when a task raised SystemExit (issue 17): a failure of that
    # task under its real type, not an interruption abandoning the others.
    log: list[str] = []
    app = make_app(log)
    hooked: list[BaseException] = []
    app.task_error_hooks.append((lambda task, error: hooked.append(error), False))
    exchange = app.exchange(head("POST", "/body"))
    exchange.start()
    respond = exchange.send(perform(exchange.send(b"{}")))
    assert isinstance(respond, Respond)
    first_task = exchange.send(None)
    assert isinstance(first_task, Call)
    exit_error = SystemExit(3)
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        effect = exchange.throw(ContainedBaseException(exit_error))
        while not isinstance(effect, Done):
            effect = exchange.send(perform(effect))  # the hook, then the second task
    assert log == ["second"]
    assert hooked == [exit_error]
    first, second = respond.tasks
    assert first.state == "failed" and first.error is exit_error
    assert second.state == "succeeded"
    (record,) = [r for r in caplog.records if "failed" in r.getMessage()]
    assert record.getMessage().endswith("failed (SystemExit: contained, the server goes on)")
    assert record.exc_info is not None and record.exc_info[1] is exit_error
    assert "abandoned" not in caplog.text and "interrupted" not in caplog.text


# -- misuse by an adapter raises at once ------------------------------------------------------


def test_start_twice_is_a_protocol_error() -> None:
    exchange = make_app([]).exchange(head("GET", "/plain"))
    exchange.start()
    with pytest.raises(LocalProtocolError, match="start"):
        exchange.start()


def test_send_before_start_is_a_protocol_error() -> None:
    exchange = make_app([]).exchange(head("GET", "/plain"))
    with pytest.raises(LocalProtocolError):
        exchange.send(None)
    with pytest.raises(LocalProtocolError):
        exchange.throw(RuntimeError())


def test_body_must_be_bytes() -> None:
    exchange = make_app([]).exchange(head("POST", "/body"))
    exchange.start()
    with pytest.raises(LocalProtocolError, match="bytes"):
        exchange.send("not bytes")


def test_respond_must_be_acknowledged_with_none() -> None:
    exchange = make_app([]).exchange(head("GET", "/plain"))
    call = exchange.start()
    assert isinstance(call, Call)
    assert isinstance(exchange.send(perform(call)), Respond)
    with pytest.raises(LocalProtocolError, match="send\\(None\\)"):
        exchange.send(b"sent")


def test_send_after_done_is_a_protocol_error() -> None:
    exchange = make_app([]).exchange(head("GET", "/plain"))
    call = exchange.start()
    exchange.send(perform(call))
    assert exchange.send(None) == Done()
    with pytest.raises(LocalProtocolError, match="DONE"):
        exchange.send(None)
    with pytest.raises(LocalProtocolError):
        exchange.throw(RuntimeError())


def test_throw_needs_an_exception() -> None:
    exchange = make_app([]).exchange(head("GET", "/plain"))
    exchange.start()
    with pytest.raises(LocalProtocolError, match="exception"):
        exchange.throw("oops")  # type: ignore[arg-type]


def test_close_abandons_an_exchange() -> None:
    exchange = make_app([]).exchange(head("GET", "/plain"))
    exchange.start()
    exchange.close()
    assert exchange.phase is Phase.DONE
    with pytest.raises(LocalProtocolError):
        exchange.send(None)


# -- random adapter behaviour: the protocol holds or fails loudly ------------------------------

ACTIONS = st.lists(
    st.sampled_from(["start", "send_none", "send_bytes", "send_value", "throw", "close"]),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(actions=ACTIONS, path=st.sampled_from(["/plain", "/body", "/crash", "/nope"]))
def test_random_adapter_calls_follow_the_protocol_or_fail_loudly(
    actions: list[str], path: str
) -> None:
    log: list[str] = []
    app = make_app(log)
    exchange = app.exchange(head("POST" if path != "/plain" else "GET", path))
    responded = False
    for action in actions:
        before = exchange.phase
        try:
            if action == "start":
                effect = exchange.start()
            elif action == "send_none":
                effect = exchange.send(None)
            elif action == "send_bytes":
                effect = exchange.send(b"{}")
            elif action == "send_value":
                effect = exchange.send({"x": 1})
            elif action == "throw":
                effect = exchange.throw(RuntimeError("adapter says no"))
            else:
                exchange.close()
                assert exchange.phase is Phase.DONE
                continue
        except LocalProtocolError:
            # Misuse is refused without changing anything.
            assert exchange.phase is before
            continue
        except (RuntimeError, ClientDisconnected):
            assert exchange.phase is Phase.DONE
            continue
        responded = responded or isinstance(effect, Respond)
        assert isinstance(effect, (ReadBody, Call, Respond, Done))
        if isinstance(effect, Call) and effect.purpose == "task":
            assert responded, "a task was released before the response"
    if not responded:
        assert log == []


# -- handlers that take no arguments have a flow of their own (no context, no tasks) -----------


def make_bare_app(seen: list[Any]) -> Application:
    from velocipy.core import JSONResponse, Request

    app = Application()

    # Literal paths: a `{team}` no parameter takes is refused at declaration.
    @app.get("/teams/a/ping")
    async def ping() -> dict[str, bool]:
        return {"pong": True}

    @app.get("/teams/blue/gone")
    def gone() -> None:
        raise HTTPException(410, "gone", headers={"X-Gone": "yes"})

    @app.get("/teams/blue/oops")
    async def oops() -> None:
        raise KeyError("oops")

    @app.exception_handler(KeyError)
    def key_error(request: Request, error: KeyError) -> JSONResponse:
        seen.append((request.path_params, request.method, str(error)))
        return JSONResponse({"handled": True}, status_code=418)

    return app


def test_bare_handler_answers_json_and_head_has_an_empty_body() -> None:
    app = make_bare_app([])
    outcome = serve(app, "GET", "/teams/a/ping")
    assert outcome.status == 200 and outcome.json() == {"pong": True}
    assert outcome.headers["content-length"] == str(len(b'{"pong":true}'))
    head_outcome = serve(app, "HEAD", "/teams/a/ping")
    assert head_outcome.respond.body == b""
    assert head_outcome.headers["content-length"] == outcome.headers["content-length"]
    assert outcome.purposes() == ["handler"]


def test_bare_handler_errors_reach_the_exception_handlers_with_the_request() -> None:
    seen: list[Any] = []
    app = make_bare_app(seen)
    outcome = serve(app, "GET", "/teams/blue/gone")
    assert outcome.status == 410 and outcome.headers["x-gone"] == "yes"
    outcome = serve(app, "GET", "/teams/blue/oops")
    assert outcome.status == 418 and outcome.json() == {"handled": True}
    assert seen == [({}, "GET", "'oops'")]
    assert outcome.purposes() == ["handler", "exception_handler"]


def test_bare_handler_crash_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    app = Application()

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("bare boom")

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        outcome = serve(app, "GET", "/crash")
    assert outcome.status == 500 and isinstance(outcome.respond.error, RuntimeError)
    assert "Exception in handler for GET /crash" in caplog.text


def test_bare_handler_undelivered_response_ends_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="velocipy"):
        outcome = serve(make_bare_app([]), "GET", "/teams/a/ping", delivered=False)
    assert outcome.status == 200
    assert caplog.records == []
