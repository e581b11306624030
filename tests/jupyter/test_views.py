"""The views without a gateway: block splitting, surfaces, the chooser, answers, objects."""

from __future__ import annotations

from typing import Any

import pytest
from _html import visible_text
from hypothesis import given
from hypothesis import strategies as st
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output
from pydantic import BaseModel

from koine_jupyter.views import KoineAnswer, ObjectView, TextView, choose_mode, flatten_record
from koine_jupyter.views._markdown import BlockSplitter, to_html
from koine_jupyter.views._surfaces import Frame, HandleSurface, WidgetSurface
from koine_jupyter.views.object import object_html, object_leaves


@given(st.lists(st.text(alphabet=st.sampled_from(list("ab `~\n")), max_size=12), max_size=30))
def test_blocks_always_add_up_to_the_text(deltas: list[str]) -> None:
    splitter = BlockSplitter()
    done: list[str] = []
    for delta in deltas:
        done.extend(block.text for block in splitter.feed(delta))
        assert "".join(done) + splitter.tail == splitter.text
    assert splitter.text == "".join(deltas)


def test_blocks_split_at_blank_lines_outside_fences() -> None:
    splitter = BlockSplitter()
    text = "Intro\n\n```python\nx = 1\n\ny = 2\n```\n\nOutro\n\nLast\n"
    done = [block.text for ch in text for block in splitter.feed(ch)]
    assert done == ["Intro\n\n", "```python\nx = 1\n\ny = 2\n```\n\n", "Outro\n\n"]
    assert splitter.tail == "Last\n"
    splitter = BlockSplitter()
    splitter.feed("```\nopen code\n\nstill code")
    assert splitter.in_fence == "```"


def test_code_is_highlighted_and_html_escaped() -> None:
    html = to_html("```python\ndef f(): pass\n```\n\n<script>alert(1)</script>")
    assert "<span style=" in html  # pygments inline styles
    assert "<script>" not in html


def _stream_into(surface: Any, text: str, pieces: int) -> None:
    splitter = BlockSplitter(max_block=1024)
    done: list[str] = []
    step = max(1, len(text) // pieces)
    for i in range(0, len(text), step):
        done.extend(block.markdown for block in splitter.feed(text[i : i + step]))
        surface.show(Frame(done, splitter.tail_markdown, "status", "markdown"))
    surface.end(None, "done")


def _answer(paragraphs: int) -> str:
    text = "\n\n".join(f"Paragraph {i}: " + "word " * 30 for i in range(paragraphs))
    code = "".join(f"x_{i} = {i}  # a long code block\n" for i in range(8 * paragraphs))
    return f"{text}\n\n```python\n{code}```\n\nThe end."


@pytest.mark.parametrize("surface", [WidgetSurface, HandleSurface])
def test_bytes_grow_with_the_answer_not_its_square(surface: Any) -> None:
    start_ipython()  # the test shell (once per process), so display() publishes
    sent: list[float] = []
    for paragraphs in (25, 100):
        text = _answer(paragraphs)
        with capture_output() as cap:
            view = surface()
            _stream_into(view, text, len(text) // 100)  # ~100 characters per update
        sent.append(view.bytes_sent / len(text))
        print(f"{surface.__name__}: {len(text):,} chars, {view.bytes_sent:,} bytes")
        # displays open as they end (what nbval compares): the first one as the placeholder,
        # any other empty (the widget's blocks go into its Output widget in a kernel)
        opened = [o.data for o in cap.outputs if not o.update]
        assert opened[0].get("text/plain") == ""
        if surface is HandleSurface:
            assert len(opened) > 10 and all(data == {} for data in opened[1:]), opened[1:3]
    # four times the answer costs about four times the bytes (the whole text on every update
    # would cost about sixteen times)
    assert sent[1] < 1.3 * sent[0], sent


def test_long_code_blocks_are_cut_and_reopened() -> None:
    splitter = BlockSplitter(max_block=40)
    text = "Intro\n\n```py\n" + "".join(f"line_{i} = {i}\n" for i in range(12)) + "```\n\nEnd\n"
    blocks = [b for ch in text for b in splitter.feed(ch)]
    assert "".join(b.text for b in blocks) + splitter.tail == text
    pieces = [b.markdown for b in blocks[1:]]
    assert len(pieces) >= 3
    for piece in pieces:  # every piece renders on its own: an open fence is closed
        assert piece.startswith("```py\n") and piece.rstrip().endswith("```"), piece
    assert all(len(b.text) < 40 + 20 for b in blocks)


def test_choose_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOINE_DISPLAY", raising=False)
    assert choose_mode() == "text"  # no kernel here
    assert choose_mode("markdown") == "markdown"
    monkeypatch.setenv("KOINE_DISPLAY", "markdown")
    assert choose_mode() == "markdown"
    assert choose_mode("text") == "text"  # an explicit choice wins over the variable
    assert choose_mode("widget") == "text"  # no kernel: widgets cannot show
    with pytest.raises(ValueError, match="display must be one of"):
        choose_mode("fancy")


@pytest.mark.parametrize(
    ("fmt", "text", "bundle"),
    [
        ("markdown", "# Hi", {"text/html": "<h1>Hi</h1>\n"}),
        ("text", "# Hi", {}),
        ("html", "<b>x</b>", {"text/html": "<b>x</b>"}),
        ("code", "x = 1", {"text/html": "<pre><code>x = 1\n</code></pre>\n"}),
        ("json", '```json\n{"a": 1}\n```', {"application/json": {"a": 1}}),
        ("json", "not json", None),
    ],
)
def test_answer_reprs_are_deterministic(fmt: Any, text: str, bundle: dict[str, Any]) -> None:
    answer = KoineAnswer(text, session_id="random-id", model="sonnet", format=fmt)
    data, metadata = answer._repr_mimebundle_()
    if bundle is None:  # highlighted code: its text is the answer's
        assert visible_text(data["text/html"]) == text
    else:
        assert data == bundle
    # where it came from is metadata (nbval does not compare it); no ids, no timings
    assert metadata == {
        "koine": {"source": "live", "model": "sonnet", "session": None, "tokens": None}
    }
    assert str(answer) == text
    assert "random-id" not in repr(answer)


def test_text_view_in_text_mode_prints_deltas(capsys: pytest.CaptureFixture[str]) -> None:
    view = TextView(display="text", rate=1e9)
    view.start()
    for piece in ("Hel", "lo ", "world"):
        view.append(piece)
    view.done()
    assert capsys.readouterr().out == "Hello world\n"
    assert view.renders >= 3


def test_text_view_throttles(capsys: pytest.CaptureFixture[str]) -> None:
    view = TextView(display="text")  # 20 updates a second
    view.start()
    for _ in range(5000):
        view.append("x")
    view.done()
    assert view.renders <= 20 * view.elapsed + 2
    assert capsys.readouterr().out == "x" * 5000 + "\n"


class Item(BaseModel):
    name: str | None = None
    qty: int | None = None


class Order(BaseModel):
    id: int | None = None
    items: list[Item] | None = None


def test_object_tree_and_leaves() -> None:
    order = Order(id=7, items=[Item(name="tea", qty=2), Item(name="cake")])
    html = object_html(order)
    assert "tea" in html and "[1]" in html and "qty" in html
    assert object_leaves(order) == [
        ("id", 7),
        ("items[0].name", "tea"),
        ("items[0].qty", 2),
        ("items[1].name", "cake"),
    ]


def test_object_view_prints_settled_fields(capsys: pytest.CaptureFixture[str]) -> None:
    view = ObjectView[Order](display="text", rate=1e9)
    view.start()
    view.update(Order(id=7))
    view.update(Order(id=7, items=[Item(name="te")]))
    assert capsys.readouterr().out == "id: 7\n"  # "te" is still being written
    view.finish(Order(id=7, items=[Item(name="tea", qty=1)]))
    assert capsys.readouterr().out == "items[0].name: tea\nitems[0].qty: 1\n"


def test_flatten_record_keeps_types() -> None:
    class Inner(BaseModel):
        city: str
        zip: int

    class Row(BaseModel):
        name: str
        tags: list[str]
        at: Inner

    row = flatten_record(Row(name="x", tags=["a"], at=Inner(city="Oslo", zip=150)))
    assert row == {"name": "x", "tags": ["a"], "at.city": "Oslo", "at.zip": 150}
