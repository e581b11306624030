"""The prompt interpolator: references are filled, everything else stays as written."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from koine_jupyter._interpolate import interpolate, lookup
from koine_jupyter.views import KoineAnswer


class Point(BaseModel):
    x: int
    y: int


class Obj:
    attr = "value"
    nested: Any = None


NS: dict[str, Any] = {
    "name": "Ada",
    "n": 3,
    "a": 1,
    "b": 2,
    "i": 7,
    "obj": Obj(),
    "seq": ["zero", "one"],
    "d": {"key": [10, 20]},
    "In": ["", "x = 1", "print(x)"],
    "Out": {2: KoineAnswer("the earlier answer"), 3: 42},
    "point": Point(x=1, y=2),
}


def fill(text: str) -> str:
    return interpolate(text, NS).text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {name}", "Hello Ada"),
        ("{obj.attr} {seq[0]} {seq[-1]}", "value zero one"),
        ("{d[\"key\"][1]} {d['key'][0]}", "20 10"),
        ("{In[2]} / {Out[3]}", "print(x) / 42"),
        ("Summarise: {Out[2]}", "Summarise: the earlier answer"),
        ("{{name}} is literal, {name} is not", "{name} is literal, Ada is not"),
        ("{{{name}}}", "{Ada}"),
        ("{missing} stays", "{missing} stays"),
        ("{seq[5]} {obj.nope} {name[0][0][0]}", "{seq[5]} {obj.nope} A"),
        ("{obj.__class__}", "{obj.__class__}"),
    ],
)
def test_references(template: str, expected: str) -> None:
    assert fill(template) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "x", "n": {"a": [1, 2]}}',
        '[{"a": 1}, {"b": {"c": null}}]',
        "def f(d):\n    return {k: v for k, v in d.items()}\n",
        'fn main() { let s = format!("{}", 1); }',
        r"\frac{a}{b} + x^{n} + x_{i} + \sqrt{b} + \mathbf{a}",
        "set = {1, 2}; empty = {}; {name:>10}",
        "}{ stray } braces {",
    ],
)
def test_json_code_and_latex_stay_as_written(text: str) -> None:
    assert fill(text) == text


def test_a_pydantic_value_is_inserted_as_json() -> None:
    assert '"x": 1' in fill("{point}")


def test_unresolved_references_are_reported() -> None:
    result = interpolate("{name} {nope} {seq[9]}", NS)
    assert result.resolved == ["name"]
    assert result.unresolved == ["nope", "seq[9]"]


def test_lookup() -> None:
    assert lookup("obj.attr", NS) == "value"
    with pytest.raises(LookupError):
        lookup("nope", NS)
    with pytest.raises(LookupError):
        lookup("1 + 1", NS)


def test_nothing_is_evaluated() -> None:
    calls: list[str] = []

    class Spy:
        def __getitem__(self, key: Any) -> str:
            calls.append(repr(key))
            return "item"

    ns = {"spy": Spy(), "__import__": __import__}
    assert interpolate("{spy[0]} {spy[__import__('os')]} {__import__('os').system}", ns).text == (
        "item {spy[__import__('os')]} {__import__('os').system}"
    )
    assert calls == ["0"]


@given(st.text(alphabet=st.sampled_from(list('ab{}[]."\\x^_ 01')), max_size=40))
def test_without_resolvable_names_text_only_loses_escapes(text: str) -> None:
    # with an empty namespace, only {{ ... }} escapes change the text
    out = interpolate(text, {}).text
    if "{{" not in text:
        assert out == text
