"""Partial views of a schema: ``partial_type`` and the lenient ``PartialParser``."""

from __future__ import annotations

import enum
import itertools
import json
from datetime import datetime
from typing import Annotated, Any, Literal, Optional, Union, cast, get_args

import pytest
from _captures import CAPTURES
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from koine_sdk._objects._schema_views import PartialParser, partial_type
from koine_sdk.errors import KoineError


class Ingredient(BaseModel):
    name: str
    grams: float


class Recipe(BaseModel):
    title: str
    servings: int
    ingredients: list[Ingredient]


class Role(enum.Enum):
    ADMIN = "admin"
    USER = "user"


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    full_name: str = Field(alias="fullName", title="Full name")
    role: Role
    kind: Literal["human", "robot"] = "human"
    born: datetime | None = None
    tags: Annotated[list[str], Field(min_length=3)] = []


class Node(BaseModel):
    value: int
    children: list[Node] = []
    parent: Optional[Node] = None  # noqa: UP045


class Left(BaseModel):
    right: Right | None = None


class Right(BaseModel):
    lefts: list[Left]


Left.model_rebuild()


_CAPTURE = CAPTURES / "stream-object.txt"


# -- partial_type -----------------------------------------------------------------------------


def test_partial_model_shape() -> None:
    partial = partial_type(Recipe)
    assert partial.__name__ == "PartialRecipe"
    assert partial.__qualname__ == "PartialRecipe"
    assert partial.__module__ == Recipe.__module__
    assert "partial view" in (partial.__doc__ or "")
    assert partial_type(Recipe) is partial  # cached
    instance = partial()
    assert (instance.title, instance.servings, instance.ingredients) == (None, None, None)
    assert repr(instance) == "PartialRecipe(title=None, servings=None, ingredients=None)"
    ingredients = partial.model_fields["ingredients"].annotation
    assert list[partial_type(Ingredient)] in get_args(ingredients)


def test_qualname_prefix_kept() -> None:
    class Local(BaseModel):
        x: int

    partial = partial_type(Local)
    assert partial.__qualname__ == Local.__qualname__.replace("Local", "PartialLocal")
    assert repr(partial(x=1)) == "PartialLocal(x=1)"


def test_leaf_types_unchanged() -> None:
    for tp in (str, int, float, bool, Role, Literal["a", "b"], datetime, Any, type(None)):
        assert partial_type(tp) is tp


def test_containers_and_unions() -> None:
    p_ing = partial_type(Ingredient)
    assert partial_type(list[Ingredient]) == list[p_ing]
    assert partial_type(dict[str, Ingredient]) == dict[str, p_ing]
    assert partial_type(tuple[Ingredient, ...]) == tuple[p_ing, ...]
    assert partial_type(Optional[Ingredient]) == Optional[p_ing]  # noqa: UP045
    assert partial_type(Ingredient | int) == Union[p_ing, int]  # noqa: UP007
    assert partial_type(Annotated[list[Ingredient], Field(min_length=2)]) == list[p_ing]
    assert partial_type(list[int]) == list[int]


def test_fixed_tuple_is_a_growing_prefix() -> None:
    parser = PartialParser(tuple[int, str])
    assert parser.parse([1, "a"]) == (1, "a")
    assert parser.parse([1]) == (1,)
    assert parser.parse([]) == ()


def test_config_and_aliases_kept_but_nothing_forbidden() -> None:
    partial = partial_type(Person)
    field = partial.model_fields["full_name"]
    assert field.alias == "fullName"
    assert field.title == "Full name"
    assert partial.model_config.get("extra") == "ignore"
    parser = PartialParser(Person)
    by_alias = parser.parse({"fullName": "Ada", "unknown": 1})
    assert by_alias.full_name == "Ada"
    by_name = parser.parse({"full_name": "Ada"})  # populate_by_name kept
    assert by_name.full_name == "Ada"


def test_recursive_model() -> None:
    partial = partial_type(Node)
    assert partial.__name__ == "PartialNode"
    parser = PartialParser(Node)
    node = parser.parse({"value": 1, "children": [{"value": 2, "children": [{}]}]})
    assert isinstance(node, partial)
    assert node.value == 1
    assert isinstance(node.children[0], partial)
    node = parser.parse({"value": 1, "children": [{"value": 2, "children": [{"value": "x"}]}]})
    assert node.children[0].children[0].value is None
    assert parser.parse({"parent": {"value": 3}}).parent.value == 3


def test_mutually_recursive_models() -> None:
    parser = PartialParser(Left)
    left = parser.parse({"right": {"lefts": [{"right": {"lefts": []}}, {"right": 3}]}})
    assert isinstance(left, partial_type(Left))
    assert isinstance(left.right, partial_type(Right))
    assert left.right.lefts[0].right.lefts == []
    assert left.right.lefts[1].right is None


# -- parse ------------------------------------------------------------------------------------


def _capture_parsed() -> list[Any]:
    values: list[Any] = []
    for line in _CAPTURE.read_text(encoding="utf-8").splitlines():
        if line.startswith("data: ") and '"parsed"' in line:
            values.append(json.loads(line[6:])["parsed"])
    return values


def test_capture_partials_grow() -> None:
    parser = PartialParser(Recipe)
    partials = [parser.parse(value) for value in _capture_parsed()]
    partial = partial_type(Recipe)
    assert len(partials) == 13
    assert all(type(p) is partial for p in partials)
    assert partials[0].model_dump() == {"title": None, "servings": None, "ingredients": None}
    assert [p.title for p in partials[:4]] == [None, "exa", "exampl", "example"]
    assert partials[4].servings == 1
    first = partials[5].ingredients
    assert first is not None
    assert len(first) == 1
    assert first[0].name is None
    assert partials[6].ingredients[0].name == "examp"
    assert partials[9].ingredients[1].model_dump() == {"name": None, "grams": None}
    assert partials[-1].model_dump() == {
        "title": "example",
        "servings": 1,
        "ingredients": [{"name": "example", "grams": 1.5}, {"name": "example", "grams": 1.5}],
    }
    # Fields only grow: once set, a value is never lost again.
    for before, after in itertools.pairwise(partials):
        for name in ("title", "servings", "ingredients"):
            if getattr(before, name) is not None:
                assert getattr(after, name) is not None


def test_enum_cut_short_is_dropped() -> None:
    parser = PartialParser(Person)
    person = parser.parse({"fullName": "Ada", "role": "adm"})
    assert person.full_name == "Ada"
    assert person.role is None
    assert parser.parse({"role": "admin"}).role is Role.ADMIN
    assert parser.parse({"kind": "hu"}).kind is None
    assert parser.parse({"born": "2024-01-0"}).born is None


def test_constraints_on_containers_do_not_reject_growing_values() -> None:
    assert PartialParser(Person).parse({"tags": ["a"]}).tags == ["a"]


def test_bad_leaf_in_nested_model_keeps_the_rest() -> None:
    parser = PartialParser(Recipe)
    recipe = parser.parse(
        {"title": "t", "servings": 2.5, "ingredients": [{"name": "a", "grams": "1.x"}]}
    )
    assert recipe.title == "t"
    assert recipe.servings is None
    assert recipe.ingredients[0].name == "a"
    assert recipe.ingredients[0].grams is None


def test_last_failing_item_dropped_earlier_items_kept() -> None:
    parser = PartialParser(Recipe)
    recipe = parser.parse({"ingredients": [{"name": "a"}, {"name": "b"}, "cut"]})
    assert [i.name for i in recipe.ingredients] == ["a", "b"]
    roles = PartialParser(list[Role])
    assert roles.parse(["admin", "user", "us"]) == [Role.ADMIN, Role.USER]


def test_earlier_failing_item_drops_the_list() -> None:
    parser = PartialParser(Recipe)
    recipe = parser.parse({"title": "t", "ingredients": ["bad", {"name": "b"}]})
    assert recipe.title == "t"
    assert recipe.ingredients is None


def test_parse_does_not_mutate_input() -> None:
    data = {"title": "t", "ingredients": [{"name": "a"}, 5]}
    snapshot = json.loads(json.dumps(data))
    PartialParser(Recipe).parse(data)
    assert data == snapshot


def test_top_level_list_of_models() -> None:
    parser: PartialParser[list[Ingredient]] = PartialParser(list[Ingredient])
    assert parser.partial_type == list[partial_type(Ingredient)]
    items = parser.parse([{"name": "a", "grams": 1}, {"name": "b"}, {}])
    assert [type(i) for i in items] == [partial_type(Ingredient)] * 3
    assert items[1].grams is None
    assert parser.parse("nope") == []
    assert parser.parse(None) == []
    assert parser.parse([{"name": "a"}, 3]) == [partial_type(Ingredient)(name="a")]


def test_not_a_dict_gives_empty_partial() -> None:
    parser = PartialParser(Recipe)
    for value in ("text", 3, None, [1, 2], True):
        result = parser.parse(value)
        assert type(result) is partial_type(Recipe)
        assert result.model_dump() == {"title": None, "servings": None, "ingredients": None}
    assert parser.parse("x") is not parser.parse("x")  # a fresh empty each time


def test_dict_of_models() -> None:
    parser = PartialParser(dict[str, Ingredient])
    result = parser.parse({"a": {"name": "x"}, "b": {"grams": "oops"}})
    assert result["a"].name == "x"
    assert result["b"].grams is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["title", "servings", "ingredients", "name", "grams", "fullName", "role", "x"]
            )
            | st.text(max_size=4),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300)
@given(JSON)
def test_parse_never_raises(value: Any) -> None:
    recipe = PartialParser(Recipe).parse(value)
    assert type(recipe) is partial_type(Recipe)
    items: Any = PartialParser(list[Ingredient]).parse(value)
    assert isinstance(items, list)
    assert all(type(i) is partial_type(Ingredient) for i in cast("list[Any]", items))
    person = PartialParser(Person).parse(value)
    assert type(person) is partial_type(Person)
    node = PartialParser(Node).parse(value)
    assert type(node) is partial_type(Node)


@settings(max_examples=100)
@given(st.lists(st.fixed_dictionaries({}, optional={"name": JSON, "grams": JSON}), max_size=5))
def test_parse_never_raises_on_recipe_shaped_data(items: list[dict[str, Any]]) -> None:
    recipe = PartialParser(Recipe).parse({"title": "t", "ingredients": items})
    assert type(recipe) is partial_type(Recipe)
    assert recipe.title == "t"


# -- validate_final / json_schema -------------------------------------------------------------


def test_validate_final_returns_the_real_model() -> None:
    parser = PartialParser(Recipe)
    data = {"title": "t", "servings": 2, "ingredients": [{"name": "a", "grams": 1.5}]}
    recipe = parser.validate_final(data, json.dumps(data))
    assert type(recipe) is Recipe
    assert recipe.ingredients[0].grams == 1.5


def test_validate_final_raises_validation_error() -> None:
    parser = PartialParser(Recipe)
    raw = '{"title": "t", "ingredients": [{"name": 1}]}'
    with pytest.raises(KoineError) as info:
        parser.validate_final(json.loads(raw), raw)
    error = info.value
    assert error.code == "VALIDATION_ERROR"
    assert error.raw_text == raw
    assert "Recipe" in error.message
    assert "servings" in error.message
    assert "ingredients[0].grams" in error.message


def test_json_schema() -> None:
    schema = PartialParser(Recipe).json_schema()
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"title", "servings", "ingredients"}
    list_schema = PartialParser(list[Ingredient]).json_schema()
    assert list_schema["type"] == "array"
    assert "$defs" in list_schema or "properties" in list_schema["items"]


def test_raw_json_schema_dict() -> None:
    raw = {"type": "object", "properties": {"city": {"type": "string"}}}
    parser: PartialParser[Any] = PartialParser(raw)
    assert parser.json_schema() == raw
    assert parser.parse({"city": "Par"}) == {"city": "Par"}
    assert parser.validate_final({"city": "Paris"}, "{}") == {"city": "Paris"}


# -- no partial twice in a row ------------------------------------------------------------------


class _Row(BaseModel):
    name: str
    tags: list[str] = []


class _Doc(BaseModel):
    title: str
    rows: list[_Row] = []


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_partial_stream_never_repeats_a_value(data: Any) -> None:
    """Events as the gateway sends them (``partial`` = the JSON text so far, ``parsed`` = its
    best-effort parse), cut at arbitrary points, some cuts repeated, then the final ``object``:
    consecutive partials are never equal, and the final object is not yielded again when the
    last partial already equals it."""
    import json as _json

    from koine_sdk._objects._schema_views import PartialParser
    from koine_sdk._sse import ServerSentEvent
    from koine_sdk._streams import ObjectStreamState
    from koine_sdk.testing._jsontext import partial_parse

    doc = data.draw(
        st.builds(
            _Doc,
            title=st.text(max_size=8),
            rows=st.lists(
                st.builds(_Row, name=st.text(max_size=5), tags=st.lists(st.text(max_size=3))),
                max_size=4,
            ),
        )
    )
    text = _json.dumps(doc.model_dump())
    cuts = sorted(data.draw(st.lists(st.integers(1, len(text)), max_size=25)))
    if data.draw(st.booleans()):
        cuts.append(len(text))  # the last partial is the whole object
    state = ObjectStreamState(PartialParser(_Doc))
    shown: list[Any] = []
    for cut in cuts:
        ok, parsed = partial_parse(text[:cut])
        if not ok:
            continue
        payload = _json.dumps({"partial": text[:cut], "parsed": parsed})
        out = state.feed(ServerSentEvent("partial-object", payload))
        if out is not None:
            shown.append(out)
    final = state.feed(ServerSentEvent("object", _json.dumps({"object": doc.model_dump()})))
    if final is not None:
        shown.append(final)
    for a, b in itertools.pairwise(shown):
        assert a != b
    assert state.final_object() == doc


class _Person(BaseModel):
    name: str
    age: int


@pytest.mark.parametrize(
    ("first", "count"),
    [
        ({"partial": '{"name":"Al"', "parsed": {"name": "Al"}}, 2),  # 2.3.0: best effort
        ({"partial": "{", "parsed": None}, 1),  # 2.3.0: a null parsed is skipped
    ],
)
def test_the_final_object_is_not_yielded_again(first: dict[str, Any], count: int) -> None:
    """2.3.0's reference cases: the last partial equals the final object, which then is not
    yielded a second time."""
    from koine_sdk._objects._schema_views import PartialParser
    from koine_sdk._sse import ServerSentEvent
    from koine_sdk._streams import ObjectStreamState

    state = ObjectStreamState(PartialParser(_Person))
    events = [
        ("partial-object", first),
        (
            "partial-object",
            {"partial": '{"name":"Alice","age":30}', "parsed": {"name": "Alice", "age": 30}},
        ),
        ("object", {"object": {"name": "Alice", "age": 30}}),
    ]
    shown = [state.feed(ServerSentEvent(n, json.dumps(d))) for n, d in events]
    assert len([s for s in shown if s is not None]) == count
