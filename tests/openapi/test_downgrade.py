"""`openapi_version="3.0.3"`: a 3.1 document rewritten so that 3.0 validators accept it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from velocipy.openapi._downgrade import downgrade

validator = pytest.importorskip("openapi_spec_validator")

FIXTURES = Path(__file__).parent / "fixtures"
INT, STR = {"type": "integer"}, {"type": "string"}


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_fastapi_documents_downgrade_to_valid_3_0(fixture: str) -> None:
    document = json.loads((FIXTURES / fixture).read_text())
    validator.validate(document)  # the 3.1 original is valid
    converted = downgrade(document)
    assert converted["openapi"] == "3.0.3"
    validator.validate(converted)
    assert document["openapi"] == "3.1.0", "the original was changed"


def schema_of(schema: dict[str, Any]) -> dict[str, Any]:
    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {},
        "components": {"schemas": {"S": schema}},
    }
    result: dict[str, Any] = downgrade(document)["components"]["schemas"]["S"]
    return result


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}], "title": "Q"},
            {"type": "integer", "minimum": 1, "title": "Q", "nullable": True},
        ),
        (
            {"anyOf": [{"$ref": "#/components/schemas/Item"}, {"type": "null"}]},
            {"allOf": [{"$ref": "#/components/schemas/Item"}], "nullable": True},
        ),
        (
            {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
            {"anyOf": [{"type": "integer"}, {"type": "string"}], "nullable": True},
        ),
        ({"type": ["string", "null"]}, {"type": "string", "nullable": True}),
        (
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        ),
        ({"const": "a", "type": "string"}, {"enum": ["a"], "type": "string"}),
        ({"type": "string", "examples": ["x", "y"]}, {"type": "string", "example": "x"}),
        (
            {"type": "array", "prefixItems": [INT, STR], "minItems": 2, "maxItems": 2},
            {"type": "array", "items": {"anyOf": [INT, STR]}, "minItems": 2, "maxItems": 2},
        ),
        (
            {"type": "string", "contentMediaType": "application/octet-stream"},
            {"type": "string", "format": "binary"},
        ),
        (
            {"properties": {"a": {"anyOf": [STR, {"type": "null"}]}}, "type": "object"},
            {"properties": {"a": {"type": "string", "nullable": True}}, "type": "object"},
        ),
    ],
)  # fmt: skip
def test_each_rewrite(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert schema_of(before) == after
