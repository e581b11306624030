"""Bulk extraction without a gateway: arguments, columns, dtypes, the window, progress."""

from __future__ import annotations

import importlib
import io
from enum import Enum
from typing import Any, Literal

import pandas as pd
import pytest
from pydantic import BaseModel

from koine_jupyter.extraction import aextract, extract
from koine_jupyter.extraction._columns import RowValues, columns_of, flatten, frame
from koine_jupyter.extraction._prepare import render
from koine_jupyter.extraction._replica import HOLD, PROBE_EVERY, Replica
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
    cols = columns_of(Person)
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
    cols = columns_of(Node)
    assert [c.name for c in cols] == ["label", "parent.label", "parent.parent"]


def test_flatten_reads_paths_and_missing_parents() -> None:
    p = Person(
        name="Ada", age=36, height=1.7, active=True, tags=["x"], address=Address(city="London")
    )
    values = flatten(p, columns_of(Person))
    assert values == ("Ada", 36, 1.7, True, ["x"], "London", None, None, None, "happy", Color.red)


def _extras(n: int, **kw: Any) -> list[RowValues]:
    return [RowValues(**kw) for _ in range(n)]


def test_frame_dtypes_come_from_the_schema_only() -> None:
    cols = columns_of(Person)
    row = flatten(
        Person(
            name="A", age=1, height=2.0, active=False, tags=[], address=Address(city="c", zip=9)
        ),
        cols,
    )
    full = frame(cols, [row, row], _extras(2, input_tokens=1, output_tokens=2), pd.RangeIndex(2))
    holes = frame(cols, [row, None], [RowValues(), RowValues(error="X: y")], pd.Index(["a", "b"]))
    empty = frame(cols, [], [], pd.RangeIndex(0))
    failed = frame(cols, [None, None], _extras(2, error="X: y"), pd.RangeIndex(2))
    expected = {
        "name": "string",
        "age": "Int64",
        "height": "Float64",
        "active": "boolean",
        "tags": "object",
        "address.zip": "Int64",
        "mood": "string",
        "color": "object",
        "error": "string",
        "input_tokens": "Int64",
        "output_tokens": "Int64",
        "attempts": "Int64",
        "answer_from": "string",
    }
    for df in (full, holes, empty, failed):
        assert {c: str(df[c].dtype) for c in expected} == expected
    assert full["tags"].tolist() == [[], []]
    assert full["error"].isna().all()
    assert holes.loc["b"].isna()[["name", "age", "tags", "address.city"]].all()
    assert holes.loc["b", "error"] == "X: y"
    assert holes["work.city"].isna().all()


def test_frame_of_no_rows_has_the_columns() -> None:
    cols = columns_of(Address)
    df = frame(cols, [], [], pd.RangeIndex(0))
    assert list(df.columns) == [
        "city", "zip", "error", "input_tokens", "output_tokens", "attempts", "answer_from"
    ]  # fmt: skip
    assert len(df) == 0


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"texts": "one string"}, "not one string"),
        ({"texts": {"a": "b"}}, "list of strings"),
        ({"texts": (t for t in ["a"])}, "list of strings"),
        ({"texts": pd.DataFrame({"t": ["a"], "u": ["b"]})}, "not a DataFrame of 2 columns"),
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
    assert list(df.columns)[:3] == ["city", "zip", "error"]
    assert str(df["zip"].dtype) == "Int64" and str(df["city"].dtype) == "string"
    assert df.attrs["koine"]["requests"] == 0


def test_prompt_rendering() -> None:
    assert render("Find {text} now", "X") == "Find X now"
    assert render("Extract:", "X") == "Extract:\n\nX"
    assert render("", "X") == "X"
    assert render("{text} and {text} {other}", "X") == "X and X {other}"


# -- the window and the outage breaker ------------------------------------------------------


def _replica(max_outage: float = 30.0) -> Replica:
    return Replica(create_koine(base_url="http://127.0.0.1:9", auth_key="k"), 0, max_outage)


def test_a_429_holds_the_window_below_the_level_that_failed_then_probes_slowly() -> None:
    r = _replica()
    r.set_limit(8)
    assert r.capacity(0.0) == 8
    r.active = 6
    r.on_throttled(10.0, level=6, wait=5.0)  # 6 in flight (itself included) was too many
    r.active = 5
    assert r.ceiling == 5.0 and r.window == 5.0
    assert r.cool_until == 0.0  # ours are in flight: no timed pause, a slot of ours frees
    r.active = 0
    for _ in range(100):
        r.on_success()
    assert r.capacity(10.0 + HOLD - 1) == 5  # held below the failed level...

    def grown(now: float) -> int:
        r.capacity(now)
        for _ in range(20):
            r.on_success()
        return r.capacity(now)

    assert grown(10.0 + HOLD) == 6  # ...then one more slot...
    assert grown(10.0 + HOLD + 1) == 6
    assert grown(10.0 + HOLD + PROBE_EVERY) == 7  # ...per probe interval
    assert grown(1000.0) == 8  # never above the limit
    r.on_throttled(2000.0, level=1, wait=5.0)  # nothing of ours in flight: others hold it all
    assert r.capacity(2004.0) == 0 and r.capacity(2005.0) == 1
    assert r.waits_429 == 1
    r.set_limit(5, active=2)  # others use 2 slots: start at 3
    assert r.capacity(3000.0) == 3


def test_an_outage_counts_once_and_probes_one_request_at_a_time() -> None:
    r = _replica(max_outage=10.0)
    r.set_limit(4)
    r.on_success()  # it answered: later failures are an outage, not a wrong URL
    for _ in range(4):  # four requests in flight fail together
        r.on_connection_failure(1.0, sent_at=0.5, message="NETWORK_ERROR: reset")
    assert r.events == 1 and r.outages == 1 and not r.dead
    assert r.capacity(1.1) == 0  # cooling down
    assert r.capacity(1.3) == 1  # then a single probe
    r.active = 1
    assert r.capacity(1.3) == 0
    r.active = 0
    r.on_connection_failure(1.4, sent_at=1.3, message="x")  # the probe failed: event 2
    assert r.events == 2 and not r.dead
    r.on_success(sent_at=1.0)  # an answer to a request older than the event proves nothing
    assert r.in_outage and r.events == 2
    r.on_success(sent_at=1.9)
    assert r.events == 0 and not r.in_outage and r.capacity(5.0) == 4
    r.on_connection_failure(20.0, sent_at=19.0, message="x")
    r.on_connection_failure(25.0, sent_at=24.0, message="x")
    assert not r.dead
    r.on_connection_failure(30.0, sent_at=29.0, message="x")  # 10 s without an answer
    assert r.dead and r.capacity(100.0) == 0


def test_a_gateway_that_never_answered_is_taken_out_quickly() -> None:
    r = _replica()
    for t in (0.0, 1.0, 2.0):
        assert not r.dead
        r.on_connection_failure(t, sent_at=t, message="refused")
    assert r.dead


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
    view = make_progress("auto", _snap, verb="classify", stream=stream)
    assert isinstance(view, TextProgress) and view.verb == "classify"
    assert type(make_progress("none", _snap, verb="extract")).__name__ == "ProgressView"


@pytest.mark.parametrize("verb", ["extract", "classify", "generate"])
def test_every_progress_rendering_names_the_verb(
    verb: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from koine_jupyter.views.progress import HandleProgress, WidgetProgress

    others = {"extract", "classify", "generate"} - {verb}
    stream = io.StringIO()
    text = TextProgress(lambda: _snap(done=98, failed=2), verb=verb, stream=stream, in_place=True)
    text.poke()
    text.finish()  # the finished summary: the last line
    lines = stream.getvalue().replace("\r", "\n").split()
    assert lines[0] == verb and not others & set(lines)
    assert stream.getvalue().rstrip().rsplit("\r", 1)[-1].startswith(f"{verb} 98/100 done")

    widget = WidgetProgress(lambda: _snap(done=100, failed=0), verb=verb, rate=1000.0)
    widget.finish()
    assert widget.surface.bar.description == verb
    assert not widget.surface.label.value.startswith(verb)  # named once: on the bar

    log = _fake_display(monkeypatch)
    handle = HandleProgress(lambda: _snap(), verb=verb, rate=1000.0)
    handle.finish("Stopped: budget")
    assert log[-1]["text/plain"].startswith(f"{verb} 37/100 done")
    capsys.readouterr()


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
