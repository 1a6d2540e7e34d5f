"""Parameter options beyond constraints: defaults, aliases, header names, strictness, and
what happens without pydantic. Through the TestClient; 422 bodies are FastAPI's."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from typing import Annotated, Any

import annotated_types as at
import pytest

from velocipy import Header, Query, VelociPy
from velocipy.core import DeclarationError
from velocipy.testing import TestClient


def test_default_factory_makes_a_fresh_default_per_request() -> None:
    app = VelociPy()
    made: list[list[str]] = []

    @app.get("/tags")
    def tags(tags: Annotated[list[str], Query(default_factory=list)]) -> int:
        tags.append("x")
        made.append(tags)
        return len(tags)

    client = TestClient(app)
    assert client.get("/tags").json() == 1
    assert client.get("/tags").json() == 1
    assert made[0] is not made[1]
    assert client.get("/tags?tags=a").json() == 2


def test_validation_alias_names_the_value_on_the_wire() -> None:
    app = VelociPy()

    @app.get("/a")
    def read(value: Annotated[int, Query(alias="ignored", validation_alias="v", gt=0)]) -> int:
        return value

    client = TestClient(app)
    assert client.get("/a?v=3").json() == 3
    assert client.get("/a?v=0").json()["detail"][0]["loc"] == ["query", "v"]


def test_header_names_with_and_without_underscore_conversion() -> None:
    app = VelociPy()

    @app.get("/h")
    def read(
        x_token: Annotated[str, Header()],
        strange_header: Annotated[str | None, Header(convert_underscores=False)] = None,
    ) -> dict[str, Any]:
        return {"token": x_token, "strange": strange_header}

    client = TestClient(app)
    response = client.get("/h", headers={"x-token": "t", "strange_header": "s"})
    assert response.json() == {"token": "t", "strange": "s"}
    assert client.get("/h", headers={"x-token": "t", "strange-header": "s"}).json() == {
        "token": "t",
        "strange": None,
    }


def test_strict_on_a_type_without_our_strict_converter_goes_to_pydantic() -> None:
    app = VelociPy()

    @app.post("/u")
    def read(u: Annotated[uuid.UUID, Query(strict=True)]) -> str:
        return str(u)

    bad = TestClient(app).post("/u", params={"u": "0b4e0e52-3b0a-4c4e-9a8e-2a2a2a2a2a2a"})
    # From a query string, a strict UUID never validates: FastAPI says the same.
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["type"] == "is_instance_of"


def test_two_markers_are_refused() -> None:
    def handler(q: Annotated[int, Query(), Header()] = 1) -> None: ...

    with pytest.raises(DeclarationError, match="two markers"):
        VelociPy().get("/x")(handler)


def test_default_and_default_factory_together_are_refused() -> None:
    with pytest.raises(TypeError, match="default or default_factory"):
        Query(1, default_factory=list)

    def handler(q: Annotated[list[int], Query(default_factory=list)] = []) -> None: ...  # noqa: B006

    with pytest.raises(DeclarationError, match="default both in its marker and signature"):
        VelociPy().get("/x")(handler)


def test_a_non_string_alias_is_refused() -> None:
    from pydantic import AliasChoices

    with pytest.raises(TypeError, match="must be a string"):
        Query(validation_alias=AliasChoices("a", "b"))  # type: ignore[arg-type]


def test_metadata_only_pydantic_applies_needs_pydantic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydantic", None)  # `import pydantic` now fails

    def handler(q: Annotated[int, at.Predicate(lambda v: v > 0)] = 1) -> None: ...

    with pytest.raises(DeclarationError, match=r"GET /x: parameter 'q'.*install pydantic"):
        VelociPy().get("/x")(handler)


def test_constraints_work_without_pydantic() -> None:
    """In a fresh interpreter where pydantic cannot be imported at all."""
    program = textwrap.dedent(
        """
        import sys
        sys.modules["pydantic"] = None
        import datetime, decimal, uuid
        from typing import Annotated
        from velocipy import Query, VelociPy
        from velocipy.core._convert import converter_for

        app = VelociPy()

        @app.get("/q")
        def q(
            a: Annotated[int, Query(gt=1)] = 2,
            d: Annotated[decimal.Decimal, Query(max_digits=3)] = decimal.Decimal(1),
            when: datetime.date | None = None,
            u: uuid.UUID | None = None,
        ) -> int:
            return a

        from velocipy.core._exchange import Exchange  # the app works through the core
        from tests.core.handdrive import serve
        out = serve(app, "GET", "/q", query=b"a=1&d=1234&when=2024-01-02&u=x")
        print(out.status, [e["type"] for e in out.json()["detail"]])
        assert "pydantic" not in [m for m in sys.modules if sys.modules[m] is not None]
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "422 ['greater_than', 'decimal_max_digits', 'uuid_parsing']"


def test_the_deprecated_example_keyword_is_one_more_example() -> None:
    with pytest.warns(DeprecationWarning, match="examples"):
        marker = Query(example=3, examples=[1])
    assert marker.doc.examples == [1, 3]
