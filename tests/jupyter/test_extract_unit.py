"""Bulk extraction without a gateway: arguments, columns, dtypes, AIMD, cache keys, progress."""

from __future__ import annotations

import importlib
import io
from enum import Enum
from typing import Any, Literal

import pandas as pd
import pytest
from pydantic import BaseModel

from koine_jupyter.extraction import (
    _cache_key,  # pyright: ignore[reportPrivateUsage]
    _columns,  # pyright: ignore[reportPrivateUsage]
    _flatten,  # pyright: ignore[reportPrivateUsage]
    _frame,  # pyright: ignore[reportPrivateUsage]
    _render,  # pyright: ignore[reportPrivateUsage]
    _Replica,  # pyright: ignore[reportPrivateUsage]
    aextract,
    extract,
)
from koine_jupyter.views.progress import (
    ProgressSnapshot,
    TextProgress,
    format_line,
    make_progress,
)
from koine_sdk import KoineError, create_koine


class Address(BaseModel):
    city: str
    zip: int | None = None


class Color(Enum):
    red = "red"


class Person(BaseModel):
    name: str
    age: int
    height: float
    active: bool
    tags: list[str]
    address: Address
    work: Address | None = None
    mood: Literal["happy", "sad"] = "happy"
    color: Color = Color.red


class Node(BaseModel):
    label: str
    parent: Node | None = None


class Empty(BaseModel):
    pass


class Clash(BaseModel):
    error: str


# -- columns and flattening ----------------------------------------------------------------


def test_columns_flatten_nested_models() -> None:
    cols = _columns(Person)
    assert [c.name for c in cols] == [
        "name",
        "age",
        "height",
        "active",
        "tags",
        "address.city",
        "address.zip",
        "work.city",
        "work.zip",
        "mood",
        "color",
    ]
    kinds = {c.name: c.kind for c in cols}
    assert kinds == {
        "name": "str",
        "age": "int",
        "height": "float",
        "active": "bool",
        "tags": "object",
        "address.city": "str",
        "address.zip": "int",
        "work.city": "str",
        "work.zip": "int",
        "mood": "str",
        "color": "object",
    }


def test_recursive_model_does_not_recurse_forever() -> None:
    cols = _columns(Node)
    assert [c.name for c in cols] == ["label", "parent.label", "parent.parent"]


def test_flatten_reads_paths_and_missing_parents() -> None:
    p = Person(
        name="Ada", age=36, height=1.7, active=True, tags=["x"], address=Address(city="London")
    )
    values = _flatten(p, _columns(Person))
    assert values == ("Ada", 36, 1.7, True, ["x"], "London", None, None, None, "happy", Color.red)


def test_frame_keeps_types_and_uses_nullable_dtypes_only_when_missing() -> None:
    cols = _columns(Person)
    row = _flatten(
        Person(
            name="A", age=1, height=2.0, active=False, tags=[], address=Address(city="c", zip=9)
        ),
        cols,
    )
    full = _frame(cols, [row, row], [None, None], [(1, 2), (3, 4)], pd.RangeIndex(2))
    assert str(full["age"].dtype) == "int64"
    assert str(full["height"].dtype) == "float64"
    assert str(full["active"].dtype) == "bool"
    assert str(full["address.zip"].dtype) == "int64"
    assert str(full["input_tokens"].dtype) == "int64"
    assert full["tags"].tolist() == [[], []]
    assert full["error"].tolist() == [None, None]

    holes = _frame(cols, [row, None], [None, "X: y"], [(1, 2), None], pd.Index(["a", "b"]))
    assert str(holes["age"].dtype) == "Int64"
    assert str(holes["height"].dtype) == "Float64"
    assert str(holes["active"].dtype) == "boolean"
    assert str(holes["output_tokens"].dtype) == "Int64"
    assert holes.loc["b"].isna()[["name", "age", "tags", "address.city"]].all()
    assert holes.loc["b", "error"] == "X: y"
    assert holes["work.city"].isna().all()


def test_frame_of_no_rows_has_the_columns() -> None:
    cols = _columns(Address)
    df = _frame(cols, [], [], [], pd.RangeIndex(0))
    assert list(df.columns) == ["city", "zip", "error", "input_tokens", "output_tokens"]
    assert len(df) == 0


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"texts": "one string"}, "not one string"),
        ({"texts": {"a": "b"}}, "list of strings"),
        ({"texts": (t for t in ["a"])}, "list of strings"),
        ({"texts": pd.DataFrame({"t": ["a"]})}, "not a whole DataFrame"),
        ({"schema": Empty}, "no fields"),
        ({"schema": {"type": "object"}}, "pydantic model"),
        ({"schema": Clash}, "reserves"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": "2"}, "concurrency"),
        ({"max_rows": -1}, "max_rows"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_retry_after": -1}, "max_retry_after"),
        ({"prompt": 3}, "prompt"),
        ({"progress": "loud"}, "progress"),
        ({"client": "http://x"}, "client"),
        ({"client": []}, "client"),
        ({"client": [object()]}, "client"),
        ({"on_interrupt": "ignore"}, "on_interrupt"),
    ],
)
def test_bad_arguments_raise_invalid_argument(kwargs: dict[str, Any], needle: str) -> None:
    args: dict[str, Any] = {"texts": ["a"], "schema": Address, **kwargs}
    with pytest.raises(KoineError) as info:
        extract(**args)
    assert info.value.code == "INVALID_ARGUMENT"
    assert needle in info.value.message


async def test_aextract_checks_arguments_too() -> None:
    with pytest.raises(KoineError) as info:
        await aextract("text", Address)
    assert info.value.code == "INVALID_ARGUMENT"


def test_empty_input_gives_an_empty_frame_without_requests() -> None:
    client = create_koine(base_url="http://127.0.0.1:9", auth_key="k")
    df = extract([], Address, client=client, progress=False)
    assert len(df) == 0
    assert list(df.columns) == ["city", "zip", "error", "input_tokens", "output_tokens"]
    assert df.attrs["koine"]["requests"] == 0


def test_prompt_rendering() -> None:
    assert _render("Find {text} now", "X") == "Find X now"
    assert _render("Extract:", "X") == "Extract:\n\nX"
    assert _render("", "X") == "X"
    assert _render("{text} and {text} {other}", "X") == "X and X {other}"


def test_cache_key_covers_what_shapes_the_answer() -> None:
    base = _cache_key("p", None, "{}", None, None)
    assert base == _cache_key("p", None, "{}", None, None)
    assert base != _cache_key("q", None, "{}", None, None)
    assert base != _cache_key("p", "sys", "{}", None, None)
    assert base != _cache_key("p", None, '{"a":1}', None, None)
    assert base != _cache_key("p", None, "{}", "haiku", None)
    assert base != _cache_key("p", None, "{}", None, ["Read"])


# -- AIMD ------------------------------------------------------------------------------------


def test_replica_window_halves_once_per_429_burst_and_grows_back() -> None:
    r = _Replica(create_koine(base_url="http://127.0.0.1:9", auth_key="k"), 0)
    r.set_limit(8)
    assert r.capacity(0.0) == 8
    r.on_throttled(10.0, 1.0)
    assert r.window == 4.0
    r.on_throttled(10.1, 1.0)  # same burst: no second decrease
    assert r.window == 4.0
    assert r.capacity(10.5) == 0  # cooling down
    assert r.capacity(11.1) == 4
    for _ in range(100):
        r.on_success()
    assert r.window == 8.0  # back to the limit, never above
    r.on_throttled(20.0, 1.0)
    r.on_throttled(21.5, 1.0)
    assert r.window == 2.0
    r.set_limit(5, active=2)  # others use 2 slots: start at 3
    assert r.capacity(100.0) == 3


def test_replica_is_taken_out_after_repeated_connection_failures() -> None:
    r = _Replica(create_koine(base_url="http://127.0.0.1:9", auth_key="k"), 0)
    r.on_connection_failure(0.0, "NETWORK_ERROR: refused")
    assert not r.dead
    assert r.capacity(0.1) == 0 and r.capacity(0.25) > 0
    r.on_success()  # an answer resets the count
    r.on_connection_failure(1.0, "x")
    r.on_connection_failure(2.0, "x")
    assert not r.dead
    r.on_connection_failure(3.0, "x")
    assert r.dead
    assert r.capacity(100.0) == 0


# -- progress --------------------------------------------------------------------------------


def _snap(**kw: Any) -> ProgressSnapshot:
    base: dict[str, Any] = {
        "total": 100,
        "done": 37,
        "failed": 2,
        "cached": 0,
        "in_flight": 2,
        "requested": 39,
        "elapsed": 10.0,
        "input_tokens": 1000,
        "output_tokens": 234,
        "concurrency": 2,
        "limit": 5,
    }
    base.update(kw)
    return ProgressSnapshot(**base)


def test_progress_line_shows_counts_rate_eta_tokens() -> None:
    line = format_line(_snap())
    assert line.startswith("extract 37/100 done")
    for needle in ("2 failed", "61 left", "3.9 rows/s", "ETA 16s", "1,234 tokens", "2/5"):
        assert needle in line
    done = format_line(_snap(done=98, failed=2, requested=100))
    assert "0 left" in done and "in 10s" in done
    assert _snap(requested=0).eta is None
    assert "gateways" in format_line(_snap(replicas=2, replicas_alive=1))


def test_text_progress_is_throttled_and_finishes_with_message() -> None:
    stream = io.StringIO()
    state = {"snap": _snap(done=0, requested=0)}
    view = TextProgress(lambda: state["snap"], stream=stream, in_place=True, rate=1000.0)
    for i in range(50):
        state["snap"] = _snap(done=i, requested=i)
        view.poke()
    view.finish("Stopped.")
    out = stream.getvalue()
    assert out.count("\r") >= 2
    assert out.endswith("Stopped.\n")
    slow = TextProgress(lambda: state["snap"], stream=io.StringIO(), in_place=True, rate=1.0)
    for _ in range(1000):
        slow.poke()
    assert slow.renders == 1


def test_make_progress_outside_a_kernel_is_text_or_nothing() -> None:
    stream = io.StringIO()
    view = make_progress("auto", _snap, stream=stream)
    assert isinstance(view, TextProgress)
    assert type(make_progress("none", _snap)).__name__ == "ProgressView"


def test_widget_progress_updates_bar_and_label(capsys: pytest.CaptureFixture[str]) -> None:
    from koine_jupyter.views.progress import WidgetProgress

    state = {"snap": _snap(done=0, failed=0, requested=0)}
    previews: list[int] = []

    def preview() -> str:
        previews.append(1)
        return "preview"

    view = WidgetProgress(lambda: state["snap"], preview=preview, rate=1000.0, preview_rate=1000.0)
    state["snap"] = _snap(done=50, failed=0, requested=50)
    view.poke()
    assert view.surface.bar.value == 50
    state["snap"] = _snap(done=100, failed=0, requested=100)
    view.finish("all done")
    assert view.surface.bar.bar_style == "success"
    assert "all done" in view.surface.label.value
    assert len(previews) == 1  # drawn at its own, lower rate
    capsys.readouterr()


class _FakeHandle:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def update(self, obj: Any, **kw: Any) -> None:
        self.log.append(obj)


def _fake_display(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import IPython.display

    log: list[Any] = []

    def display(obj: Any, **kw: Any) -> _FakeHandle | None:
        log.append(obj)
        return _FakeHandle(log) if kw.get("display_id") else None

    monkeypatch.setattr(IPython.display, "display", display)
    return log


def test_widget_progress_preview_and_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    from koine_jupyter.views.progress import WidgetProgress

    log = _fake_display(monkeypatch)
    state = {"snap": _snap(done=0, failed=0, requested=0)}
    frame = pd.DataFrame({"a": [1]})
    view = WidgetProgress(lambda: state["snap"], preview=lambda: frame, preview_rate=1000.0)
    assert log[0]["text/plain"] == ""  # the widget's text form is the constant placeholder
    assert "application/vnd.jupyter.widget-view+json" in log[0]
    state["snap"] = _snap(done=100, failed=0, requested=100)
    view.poke()
    live = view.surface._live  # pyright: ignore[reportPrivateUsage]
    assert "<table" in live.value  # the preview, under the bar
    view.finish()
    assert live not in view.surface._box.children  # pyright: ignore[reportPrivateUsage]
    assert view.surface.bar.bar_style == "success" and view.surface.bar.value == 100


def test_handle_progress_draws_line_and_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    from koine_jupyter.views.progress import HandleProgress

    log = _fake_display(monkeypatch)
    state = {"snap": _snap(done=1, failed=0, requested=1)}
    view = HandleProgress(
        lambda: state["snap"], preview=lambda: pd.DataFrame({"col": [1]}), rate=1000.0
    )
    view.poke()
    assert "1/100 done" in log[-1]["text/plain"]
    assert "<table" in log[-1]["text/html"] and "col" in log[-1]["text/html"]
    state["snap"] = _snap(done=100, failed=0, requested=100)
    view.finish()
    assert log[-1] == {"text/plain": ""}  # success: back to the placeholder
    stopped = HandleProgress(lambda: _snap(), rate=1000.0)
    stopped.finish("Stopped: budget")
    assert "Stopped: budget" in log[-1]["text/plain"]


def test_last_result_is_reachable_from_module_and_function() -> None:
    extract_module = importlib.import_module("koine_jupyter.extraction")
    assert hasattr(extract_module, "last_result")
    assert "last_result" in extract.__dict__
