"""The local gateway's model without HTTP: schema-driven values, partial parse, directives."""

from __future__ import annotations

from typing import Any

import pytest

from koine_sdk.testing import example_for_schema, partial_parse
from koine_sdk.testing._directives import parse_directives
from koine_sdk.testing._jsontext import extract_json
from koine_sdk.testing._text import filler, split_even

PERSON = {
    "$defs": {
        "Address": {
            "properties": {
                "city": {"title": "City", "type": "string"},
                "zip": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            },
            "required": ["city"],
            "type": "object",
        },
        "Color": {"enum": ["red", "green"], "type": "string"},
    },
    "properties": {
        "name": {"type": "string"},
        "age": {"minimum": 18, "type": "integer"},
        "score": {"exclusiveMaximum": 1, "type": "number"},
        "addresses": {"items": {"$ref": "#/$defs/Address"}, "type": "array"},
        "color": {"$ref": "#/$defs/Color"},
        "nick": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    },
    "required": ["name", "age", "addresses", "color"],
    "type": "object",
}

SCHEMAS: list[dict[str, Any]] = [
    PERSON,
    {"type": "array", "items": {"type": "integer", "minimum": 5, "maximum": 7}},
    {"type": "array", "items": {"type": "string"}, "minItems": 4, "uniqueItems": True},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "items": False},
    {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date"},
            "at": {"type": "string", "format": "date-time"},
            "mail": {"type": "string", "format": "email"},
            "site": {"type": "string", "format": "uri"},
            "id": {"type": "string", "format": "uuid"},
            "short": {"type": "string", "maxLength": 3},
            "long": {"type": "string", "minLength": 20},
        },
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "a": {"type": "number", "minimum": 10, "maximum": 10},
            "b": {"type": "number", "exclusiveMinimum": 2, "exclusiveMaximum": 3},
            "c": {"type": "integer", "exclusiveMinimum": 5},
            "d": {"type": "integer", "maximum": -3},
            "e": {"type": "integer", "multipleOf": 4},
            "f": {"type": "number", "multipleOf": 0.25, "minimum": 1.1},
            "g": {"const": "fixed"},
            "h": {"type": ["null", "boolean"]},
            "i": {"type": "null"},
        },
        "required": ["a", "b", "c", "d", "e", "f", "g", "h", "i"],
    },
    {
        "allOf": [
            {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]},
            {"properties": {"y": {"type": "integer"}}, "required": ["y"]},
        ]
    },
    {
        "$ref": "#/definitions/Node",
        "definitions": {
            "Node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}},
                },
                "required": ["value"],
            }
        },
    },
    {"oneOf": [{"type": "null"}, {"type": "object", "properties": {"k": {"enum": [3, 4]}}}]},
    {"type": "object", "required": ["only"]},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: str(s)[:40])
@pytest.mark.parametrize("unicode", [False, True])
def test_examples_satisfy_their_schema(schema: dict[str, Any], unicode: bool) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    value = example_for_schema(schema, items=3, unicode=unicode)
    jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)


def test_example_matches_the_pydantic_capture() -> None:
    rocket = "example ✓ 日本語 🚀"
    assert example_for_schema(PERSON, unicode=True) == {
        "name": rocket,
        "age": 18,
        "score": 0.5,
        "addresses": [{"city": rocket, "zip": rocket}] * 2,
        "color": "red",
        "nick": rocket,
    }


def test_recursive_refs_terminate() -> None:
    value = example_for_schema(SCHEMAS[7], items=2)
    depth = 0
    while value.get("children"):
        value = value["children"][0]
        depth += 1
    assert 3 < depth < 20


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ('{"title', {}),
        ('{"title": "exa', {"title": "exa"}),
        ('{"title": "example", "s', {"title": "example"}),
        ('{"title": "example", "servings": 1', {"title": "example", "servings": 1}),
        ('{"a": [{"nam', {"a": [{}]}),
        ('{"a": [{"n": "x", "g": 1.5}, {', {"a": [{"n": "x", "g": 1.5}, {}]}),
        ('{"ok": true, "', {"ok": True}),
        ("[1, 2", [1, 2]),
    ],
)
def test_partial_parse_like_the_captures(text: str, parsed: Any) -> None:
    assert partial_parse(text) == (True, parsed)


def test_partial_parse_refuses_prose() -> None:
    assert partial_parse("Sorry, I c")[0] is False
    assert partial_parse("```json\n{")[0] is False


def test_extract_json_strategies() -> None:
    assert extract_json('{"a": 1}') == (True, {"a": 1}, None)
    assert extract_json('```json\n{"a": 1}\n```') == (True, {"a": 1}, "markdown-block")
    assert extract_json('Sure! {"a": [1]} hope it helps') == (True, {"a": [1]}, "embedded-json")
    assert extract_json("no") == (False, None, None)


def test_directives_are_stripped_and_read() -> None:
    clean, found = parse_directives("Say hi [[unicode]] [[chunks=4]] [[slow=0.5]] [[fail-after=2]]")
    assert clean == "Say hi"
    assert (found.unicode, found.chunks, found.slow) == (True, 4, 0.5)
    assert [f.after for f in found.faults] == [2]
    assert parse_directives("[[args]] show me")[0] == "show me"
    assert parse_directives("keep [[unknown]] this")[0] == "keep [[unknown]] this"


def test_split_even_and_filler() -> None:
    assert split_even("Echo: raw framing", 2) == ["Echo: raw", " framing"]
    assert split_even("", 3) == []
    for size in (0, 1, 2, 3, 17, 1000, 65537):
        for unicode in (False, True):
            assert len(filler(size, unicode).encode()) == size
