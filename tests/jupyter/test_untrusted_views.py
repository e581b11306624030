"""More of what untrusted text must not do to the views (beside test_untrusted_output.py):
widget mode hands over to the cell's result without an empty moment; frame views survive
deeply nested answers; any mix of payload pieces renders inert (a property test); remote
images load only when opted in; IPython's ``$name`` expansion is off in a ``%koine`` line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from _kernels import Kernel, koine_kernel, of_type
from hypothesis import given, settings
from hypothesis import strategies as st

from koine_jupyter.views import _markdown
from koine_jupyter.views._markdown import sanitize_html, to_html

_DANGEROUS_TAGS = frozenset(
    {"script", "iframe", "object", "embed", "form", "input", "style", "link", "meta", "base"}
)
_URL_ATTRS = frozenset({"href", "src", "action", "formaction", "xlink:href", "srcset"})


class _Active(HTMLParser):
    """What could run or load by itself in an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DANGEROUS_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip()
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=>")
            if name in _URL_ATTRS and value:
                parts = urlsplit(value)
                if parts.scheme.lower() not in ("", "http", "https", "mailto"):
                    self.found.append(f"<{tag} {name}={value}>")
                if tag == "img" and name == "src" and (parts.scheme or parts.netloc):
                    self.found.append(f"remote image {value}")
            if name == "style" and ("position" in value or "url(" in value):
                self.found.append(f"<{tag} style={value}>")


def active(fragment: str) -> list[str]:
    parser = _Active()
    parser.feed(fragment)
    parser.close()
    return parser.found


_PIECES = st.sampled_from(
    [
        "<", ">", "<img src=x onerror=alert(1)>", "<script>", "</script>", "<svg onload=1>",
        "<a href='javascript:x'>", "javascript:", "JaVa&#115;cript:", "&#x6a;avascript:",
        "[t](", ")", "](", "![i](", "http://e.example/p.png", "<iframe>", '"', "'", "`",
        "```", "\n", "\n\n", " ", "x", "<style>", "style=position:fixed", "&lt;", "&", "*",
        "<form action=x>", "vbscript:", "data:text/html,", "onerror=", "//e.example/i.png",
    ]
)  # fmt: skip


@given(st.lists(_PIECES, max_size=40).map("".join))
@settings(max_examples=300, deadline=None)
def test_any_mix_of_payload_pieces_renders_inert(text: str) -> None:
    assert not active(to_html(text))
    assert not active(sanitize_html(text))


def test_remote_images_load_only_when_opted_in(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    image = "![chart](https://example.org/chart.png)"
    assert "<img" not in to_html(image)
    monkeypatch.setenv(_markdown.ENV_REMOTE_IMAGES, "1")
    assert '<img src="https://example.org/chart.png"' in to_html(image)
    monkeypatch.delenv(_markdown.ENV_REMOTE_IMAGES)
    try:
        ip.run_line_magic("config", "KoineMagics.remote_images = True")
        assert "<img" in to_html(image)
        assert not active(to_html("![x](javascript:alert(1))"))  # whatever the setting
    finally:
        ip.run_line_magic("config", "KoineMagics.remote_images = False")
    assert "<img" not in to_html(image)


@pytest.fixture(scope="module")
def kernel(koine_gateway_server: Any) -> Iterator[Kernel]:
    with koine_kernel(koine_gateway_server) as k:
        yield k


def test_widget_mode_swaps_to_the_answer_without_an_empty_moment(kernel: Kernel) -> None:
    """The live view keeps the answer until the cell's result (the same answer) is out; only
    then does it fold to its status line. Before the result, no message empties the view."""
    words = " ".join(f"w{i}" for i in range(40))
    msgs, reply = kernel.run(f"%%koine --display widget\n[[chunks=20]] [[slow=0.01]] {words}")
    assert reply["content"]["status"] == "ok", reply["content"]
    at = msgs.index(of_type(msgs, "execute_result")[0])

    def states(part: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m["content"]["data"].get("state", {}) for m in of_type(part, "comm_msg")]

    before, after = states(msgs[:at]), states(msgs[at:])
    assert any("Echo: w0" in s.get("value", "") for s in before)  # it streamed
    # nothing before the result removes the answer: no folded box, no status-only value
    assert not [s for s in before if "children" in s], before
    assert not [s for s in before if "✓" in s.get("value", "")], before
    # after it, the view folds to its final status line
    assert any(len(s.get("children", [])) == 1 for s in after), after
    assert any("✓" in s.get("value", "") and "Echo" not in s.get("value", "") for s in after)


@pytest.mark.parametrize("mode", ["markdown", "widget", "text"])
def test_frame_views_draw_deep_answers_without_recursion_errors(kernel: Kernel, mode: str) -> None:
    code = (
        "from koine_jupyter.views import FrameView, to_dataframe\n"
        "deep = {'leaf': '<img src=x onerror=alert(1)>'}\n"
        "for _ in range(3000):\n"
        "    deep = {'k': [deep]}\n"
        "rows = [{'x': 1, 'deep': deep}, {'x': 2, 'deep': deep}]\n"
        f"f = FrameView(display={mode!r})\n"
        "f.start()\n"
        "f.update(rows)\n"
        "df = f.finish(rows)\n"
        "df._repr_html_()\n"
        "assert len(df) == 2 and to_dataframe(deep).shape == (1, 1)\n"
        "None"
    )
    msgs, reply = kernel.run(code, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert not of_type(msgs, "error")
    shown = json.dumps([m["content"] for m in msgs if m["msg_type"] != "status"])
    assert "RecursionError" not in shown
    for m in msgs:
        data: dict[str, Any] = m["content"].get("data", {})
        html = data.get("text/html")
        if isinstance(html, str):
            assert not active(html), html[:300]


def test_the_line_magic_sends_dollar_names_as_written(kernel: Kernel) -> None:
    """IPython's own expansion of magic lines is off: ``$name`` and ``{expr}`` reach our one
    pass as typed (``{name}`` is ours; ``$name`` is never filled)."""
    _, reply = kernel.run("secret = 'S3CRET'")
    assert reply["content"]["status"] == "ok"
    _, reply = kernel.run("%koine --out d1 say $secret and {secret.upper()}")
    assert reply["content"]["status"] == "ok", reply["content"]
    _, ok = kernel.run("assert d1.text == 'Echo: say $secret and {secret.upper()}', d1.text")
    assert ok["content"]["status"] == "ok", ok["content"]
