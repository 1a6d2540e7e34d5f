"""A VelociPy app wrapped in pure ASGI middleware: OpenTelemetry's, and a Sentry-like one.

Both are the kind of third-party middleware that only runs around the ASGI entry
point; served by `velocipy run`, the app goes through that entry (`app.needs_asgi`).
What they recorded is read back through the app itself.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from velocipy import BackgroundTasks, VelociPy

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))

#: (path, status) of every request the Sentry-like middleware saw, and what it captured.
TRANSACTIONS: list[list[Any]] = []
CAPTURED: list[str] = []
TASKS: list[str] = []


class SentryLikeMiddleware:
    """Wraps the app as Sentry's ASGI integration does: watches `send`, captures errors."""

    def __init__(self, app: Any, *, environment: str) -> None:
        self.app = app
        self.environment = environment

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen: dict[str, int] = {}

        async def watched_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-environment", b"test")]
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as error:
            CAPTURED.append(repr(error))
            raise
        finally:
            TRANSACTIONS.append([scope["path"], seen.get("status")])


app = VelociPy()


@app.get("/hello/{name}")
def hello(name: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(TASKS.append, name)
    return {"hello": name}


@app.post("/echo")
async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@app.get("/boom")
def boom() -> None:
    raise RuntimeError("the handler failed")


@app.get("/_seen")
def seen() -> dict[str, Any]:
    spans = [
        [
            span.name,
            span.attributes.get(
                "http.response.status_code", span.attributes.get("http.status_code")
            ),
        ]
        for span in EXPORTER.get_finished_spans()
        if span.kind is SpanKind.SERVER
    ]
    return {"spans": spans, "transactions": TRANSACTIONS, "captured": CAPTURED, "tasks": TASKS}


app.add_middleware(SentryLikeMiddleware, environment="test")
app.add_middleware(OpenTelemetryMiddleware, tracer_provider=PROVIDER)
