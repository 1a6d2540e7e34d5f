"""schemathesis calls every operation of the example apps with data made from their schemas.

In process (over ASGI), a few examples per operation, a fixed seed: no answer
may be a server error, and every answer's body and headers must fit what the
document says of its status. A status the document does not list is not
checked: handlers raise `HTTPException(404)` without declaring `responses=`,
in FastAPI apps as in ours, and that is the app's documentation, not ours.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # about 15 s on an idle machine; .ci/run runs it

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

EXAMPLES = ["examples.background_tasks", "examples.todo_service", "tests.openapi.browser_app"]
#: Operations whose 500 is their code's, kept as written, not the document's.
EXPECTED_FAILURES = {
    # The seed page's handler, verbatim: `data: dict[str, Any]`, then `data["email"]`.
    "examples.background_tasks:POST /newsletter": "the seed page indexes data['email']",
}


#: Where the todo example keeps its database for these tests (removed at exit).
_DATA = tempfile.TemporaryDirectory(prefix="velocipy-schemathesis-")


def _schema(module: str) -> Any:
    loaded = importlib.import_module(module)
    if module == "examples.todo_service":
        app = loaded.create_app(os.path.join(_DATA.name, "todo.sqlite3"))
    else:
        app = loaded.app
    return schemathesis.openapi.from_asgi("/openapi.json", app)


SETTINGS = hypothesis.settings(
    max_examples=8,
    derandomize=True,  # the same cases on every run
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)


def _cases() -> list[Any]:
    found = []
    for module in EXAMPLES:
        schema = _schema(module)
        for result in schema.get_all_operations():
            operation = result.ok()
            name = f"{module}:{operation.label}"
            marks = []
            if name in EXPECTED_FAILURES:
                marks.append(pytest.mark.xfail(reason=EXPECTED_FAILURES[name], strict=True))
            found.append(pytest.param(module, operation, id=name, marks=marks))
    return found


@pytest.mark.parametrize(("module", "operation"), _cases())
def test_every_operation_keeps_its_documented_promises(module: str, operation: Any) -> None:
    @SETTINGS
    @hypothesis.given(case=operation.as_strategy())
    def check(case: Any) -> None:
        case.call_and_validate(excluded_checks=[schemathesis.checks.status_code_conformance])

    check()
