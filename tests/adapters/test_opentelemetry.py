"""A pure ASGI middleware from the ecosystem, OpenTelemetry's, on a VelociPy app:
one server span per request, recorded by the in-memory exporter."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.instrumentation.asgi")
pytest.importorskip("opentelemetry.sdk")

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind  # noqa: E402

from velocipy import BackgroundTasks, VelociPy  # noqa: E402
from velocipy.middleware import GZipMiddleware  # noqa: E402
from velocipy.testing import TestClient  # noqa: E402


def test_a_span_per_request() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = VelociPy()
    done: list[str] = []

    @app.get("/hello/{name}")
    def hello(name: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(done.append, name)
        return {"hello": name}

    app.add_middleware(GZipMiddleware)  # VelociPy's own first, the ASGI one outside it
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    client = TestClient(app)
    for name in ("ann", "bob"):
        assert client.get(f"/hello/{name}").json() == {"hello": name}
    assert client.get("/nowhere").status_code == 404

    servers = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert len(servers) == 3
    statuses = [
        s.attributes.get("http.status_code", s.attributes.get("http.response.status_code"))
        for s in servers
    ]
    assert statuses == [200, 200, 404]
    assert done == ["ann", "bob"]
