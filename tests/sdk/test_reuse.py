"""Partial objects in O(what changed): ``PartialBuilder`` must give exactly what parsing the
whole value gives (``PartialParser.parse``), for every prefix of a streamed JSON document, while
reusing the parts that did not change."""

from __future__ import annotations

import json
from typing import Annotated, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from koine_sdk._objects._builder import PartialBuilder
from koine_sdk._objects._schema_views import parser_for
from koine_sdk.testing import partial_parse


class Row(BaseModel):
    id: int
    name: str
    score: float | None = None


class Tag(BaseModel):
    model_config = ConfigDict(populate_by_name=True, str_to_lower=True)

    label: str = Field(alias="Label")
    weight: Annotated[int, Field(ge=0)] = 0


class Table(BaseModel):
    title: str
    rows: list[Row]
    tags: list[Tag] = []
    meta: dict[str, Row] = {}
    best: Row | None = None
    grid: list[list[int]] = []


class Node(BaseModel):
    value: int
    children: list[Node] = []


SCHEMAS: list[Any] = [Table, list[Row], Node, list[list[Row]]]

_junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False,
                  allow_infinity=False, width=32), st.text(max_size=4))  # fmt: skip


def _row() -> st.SearchStrategy[Any]:
    good = st.fixed_dictionaries(
        {"id": st.integers(0, 999), "name": st.text(max_size=6)},
        optional={"score": st.floats(-1, 1) | st.none()},
    )
    bad = st.fixed_dictionaries({"id": _junk, "name": _junk})
    return st.one_of(good, good, good, bad, _junk)


def _doc(schema: Any) -> st.SearchStrategy[Any]:
    if schema is Table:
        tag = st.fixed_dictionaries(
            {}, optional={"Label": st.text(max_size=4), "label": _junk, "weight": _junk}
        )
        return st.fixed_dictionaries(
            {"title": st.text(max_size=8) | _junk, "rows": st.lists(_row(), max_size=8)},
            optional={
                "tags": st.lists(tag, max_size=3) | _junk,
                "meta": st.dictionaries(st.text(max_size=3), _row(), max_size=3),
                "best": _row(),
                "grid": st.lists(st.lists(st.integers() | _junk, max_size=3), max_size=3),
            },
        )
    if schema == list[Row]:
        return st.lists(_row(), max_size=10)
    if schema == list[list[Row]]:
        return st.lists(st.lists(_row(), max_size=4), max_size=4)
    return st.recursive(
        st.fixed_dictionaries({"value": st.integers(0, 9) | _junk}),
        lambda kids: st.fixed_dictionaries(
            {"value": st.integers(0, 9), "children": st.lists(kids, max_size=3)}
        ),
        max_leaves=12,
    )


def _prefix_values(text: str, cuts: list[int]) -> list[Any]:
    """What the gateway sends as ``parsed`` for each prefix (changed values only)."""
    values: list[Any] = []
    for cut in sorted({*cuts, len(text)}):
        ok, value = partial_parse(text[:cut])
        if ok and (not values or value != values[-1]):
            values.append(value)
    return values


@st.composite
def _streams(draw: st.DrawFn) -> tuple[Any, list[Any]]:
    schema = draw(st.sampled_from(SCHEMAS))
    text = json.dumps(draw(_doc(schema)))
    cuts = draw(st.lists(st.integers(0, len(text)), max_size=40))
    if draw(st.booleans()):
        cuts = list(range(0, len(text), max(1, len(text) // 60)))  # a steady stream
    return schema, _prefix_values(text, cuts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_streams())
def test_builder_equals_parsing_the_whole_value(stream: tuple[Any, list[Any]]) -> None:
    schema, values = stream
    parser = parser_for(schema)
    builder = PartialBuilder(parser)
    previous: Any = object()
    for value in values:
        built = builder.parse(value)
        whole = parser.parse(value)
        assert built == whole, (value, built, whole)
        assert type(built) is type(whole)
        if isinstance(whole, BaseModel):
            assert built.model_dump() == whole.model_dump()
        if built is previous:
            assert parser.parse(value) == previous  # "unchanged" only when it is
        previous = built


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(SCHEMAS), min_size=1, max_size=1), st.data())
def test_builder_never_raises_on_arbitrary_json(schemas: list[Any], data: st.DataObject) -> None:
    parser = parser_for(schemas[0])
    builder = PartialBuilder(parser)
    json_values = st.recursive(
        _junk, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
            st.sampled_from(["title", "rows", "id", "name", "value", "children", "x"]), inner,
            max_size=4),
        max_leaves=15,
    )  # fmt: skip
    for value in data.draw(st.lists(json_values, max_size=6)):
        assert builder.parse(value) == parser.parse(value)


def test_unchanged_items_are_reused() -> None:
    parser = parser_for(Table)
    builder = PartialBuilder(parser)
    rows = [{"id": i, "name": f"r{i}"} for i in range(5)]
    first = builder.parse({"title": "t", "rows": rows[:3]})
    second = builder.parse({"title": "t", "rows": [*rows[:3], {"id": 3, "name": "r"}]})
    third = builder.parse({"title": "t", "rows": rows[:4]})
    assert [r.id for r in third.rows] == [0, 1, 2, 3]
    assert all(a is b for a, b in zip(first.rows, second.rows[:3], strict=True))
    assert third.rows[:3] == second.rows[:3] and third.rows[0] is first.rows[0]
    assert second.rows[3] is not third.rows[3]  # the growing item is rebuilt
    assert builder.parse({"title": "t", "rows": rows[:4]}) is third  # nothing new: same object


def test_a_failing_middle_item_drops_the_list_like_the_whole_parse() -> None:
    parser = parser_for(list[Row])
    builder = PartialBuilder(parser)
    good = {"id": 1, "name": "a"}
    kept = builder.parse([good, "junk"])
    assert kept == parser.parse([good, "junk"])
    assert [r.model_dump() for r in kept] == [{"id": 1, "name": "a", "score": None}]
    assert builder.parse([good, "junk", good]) == parser.parse([good, "junk", good]) == []
