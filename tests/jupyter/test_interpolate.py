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


# -- code is sent as written ----------------------------------------------------------------

EVERYTHING = {"i": 1, "df": "DF", "user": "U", "name": "N", "a": 1, "b": 2, "x": 5}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            'Fix {name}:\n\n```python\nprint(f"row {i}: {df.shape}")\n```\nfor {name}',
            'Fix N:\n\n```python\nprint(f"row {i}: {df.shape}")\n```\nfor N',
        ),
        ("JS: `Hello ${user}` for {user}", "JS: `Hello ${user}` for U"),
        ("`{{name}}` stays, {{name}} is escaped", "`{{name}}` stays, {name} is escaped"),
        ("~~~\n{{name}} {x}\n~~~\n{x}", "~~~\n{{name}} {x}\n~~~\n5"),
        ("unclosed fence {x}\n```js\nlet a = {x};\n", "unclosed fence 5\n```js\nlet a = {x};\n"),
        ("a ``span with ` inside {x}`` and {x}", "a ``span with ` inside {x}`` and 5"),
        ("a lone ` backtick {x}", "a lone ` backtick 5"),
        (
            "shell ${user} and CI ${{ matrix.os }} then {x}",
            "shell ${user} and CI ${{ matrix.os }} then 5",
        ),
        ("> ```\n> {x}\n", "> ```\n> 5\n"),  # a fence in a quote is not at a line's start
    ],
)
def test_code_and_dollar_groups_are_kept(template: str, expected: str) -> None:
    assert interpolate(template, EVERYTHING).text == expected


_PROSE = st.text(alphabet=st.sampled_from(list("ab{}[]. $x_^\\\n")), max_size=30)
_CODE = st.text(alphabet=st.sampled_from(list("ab{}[]. $x_^\\\n\"'")), max_size=30)


@given(
    st.lists(st.tuples(_PROSE, _CODE, st.sampled_from(["`", "``", "fence"])), max_size=5), _PROSE
)
def test_code_is_never_touched(pieces: list[tuple[str, str, str]], last: str) -> None:
    # prose, then code (an inline span, or a fenced block on lines of its own), repeatedly:
    # the code comes out exactly as written, the prose as if it stood alone
    parts: list[str] = []
    expected: list[str] = []
    for prose, code, kind in pieces:
        if kind == "fence":
            prose = prose + "\n"
            body = "\n".join(line for line in code.split("\n"))
            code = f"```\n{body}\n```\n"
        else:
            code = f"{kind}{code.replace(chr(10), ' ').strip('`')}{kind}"
            prose = prose.rstrip("\n") + " "  # the span stays in the paragraph
            if "\n" in code or not code.strip("`"):
                continue
        parts += [prose, code]
        expected += [interpolate(prose, EVERYTHING).text, code]
    parts.append(" " + last)
    expected.append(interpolate(" " + last, EVERYTHING).text)
    assert interpolate("".join(parts), EVERYTHING).text == "".join(expected)


@given(_CODE)
def test_a_fenced_block_is_verbatim_whatever_it_holds(body: str) -> None:
    lines = [line for line in body.split("\n") if not line.lstrip().startswith("```")]
    template = "{x} before\n```python\n" + "\n".join(lines) + "\n```\n{x} after"
    out = interpolate(template, EVERYTHING).text
    assert out == "5 before\n```python\n" + "\n".join(lines) + "\n```\n5 after"
