"""Model and gateway text is untrusted: nothing an answer says may run in the notebook.

The echo model repeats the prompt, so a prompt carrying the payloads comes back as an answer
carrying them. Every payload names ``koinePwned``: in a published output that name may appear
as text (escaped, inert) but never inside a tag's attribute (an event handler, a
``javascript:`` link, an image URL) or inside a script. Every display mode, format, live frame,
final result, replayed answer, widget state message and ``%koine health`` from a hostile gateway
is checked, and so is an nbconvert HTML export of such outputs.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import nbformat
import pytest
from _kernels import Kernel, kernel_env, koine_kernel, new_notebook, of_type
from nbclient import NotebookClient

MARK = "koinePwned"
PAYLOADS = [
    f'<img src=x onerror="window.{MARK}=1">',
    f"<script>window.{MARK}=1</script>",
    f'<a href="javascript:window.{MARK}=1">click</a>',
    f"[link](javascript:window.{MARK}=1)",
    f"[spaced](java\tscript:window.{MARK}=1)",
    f"![pixel](http://leak.invalid/{MARK}.png)",
    f'<iframe src="javascript:window.{MARK}=1"></iframe>',
    f'<div style="position:fixed;top:0" onmouseover="window.{MARK}=1">cover</div>',
]
PROMPT = "\n\n".join(PAYLOADS)


class _Inspector(HTMLParser):
    """Collects what would be live in ``markup``: attributes and script/style contents that
    carry the mark, and images (remote images are off by default)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.live: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            # a remote image shown as a plain link is inert until someone clicks it
            web_link = tag == "a" and name == "href" and (value or "").startswith("http")
            if (MARK in (value or "") and not web_link) or MARK in name:
                self.live.append(f"<{tag} {name}={value!r}>")
            if name.startswith("on"):
                self.live.append(f"<{tag} {name}=...>")
            if name == "style" and value and "position" in value:
                self.live.append(f"<{tag} style={value!r}>")
        if tag in {"img", "iframe", "object", "embed", "form"}:
            self.live.append(f"<{tag}>")
        if tag in {"script", "style"}:
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None and MARK in data:
            self.live.append(f"<{self._in}>{data[:60]}")


def live_parts(markup: str) -> list[str]:
    inspector = _Inspector()
    inspector.feed(markup)
    inspector.close()
    return inspector.live


def assert_inert(bundle: dict[str, Any], where: str) -> None:
    """No MIME type of ``bundle`` but ``text/plain`` may carry an active payload; model text
    is never published as raw Markdown (which frontends render with its HTML)."""
    for mime, value in bundle.items():
        if mime == "text/plain" or not isinstance(value, str):
            continue
        if MARK in value:
            assert mime == "text/html", (where, mime, value[:200])
        assert not live_parts(value), (where, mime, live_parts(value))


def published(msgs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every bundle and widget state a cell sent, with where it came from."""
    out: list[tuple[str, dict[str, Any]]] = []
    for m in msgs:
        kind = m["msg_type"]
        content = m["content"]
        if kind in ("display_data", "update_display_data", "execute_result"):
            out.append((kind, content["data"]))
        elif kind in ("comm_open", "comm_msg"):
            state = content.get("data", {}).get("state", {})
            strings = {k: v for k, v in state.items() if isinstance(v, str)}
            out.append((f"{kind} {sorted(strings)}", {"widget-state": json.dumps(strings)}))
    return out


def check_cell(kernel: Kernel, code: str) -> list[tuple[str, dict[str, Any]]]:
    msgs, reply = kernel.run(code, timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    bundles = published(msgs)
    for where, bundle in bundles:
        if "widget-state" in bundle:
            (value,) = bundle.values()
            for text in json.loads(value).values():
                assert not live_parts(text), (code, where, live_parts(text))
        else:
            assert_inert(bundle, f"{code.splitlines()[0]}: {where}")
    return bundles


@pytest.fixture(scope="module")
def kernel(koine_gateway_server: Any) -> Iterator[Kernel]:
    with koine_kernel(koine_gateway_server, f"payload = {PROMPT!r}") as k:
        yield k


@pytest.mark.parametrize("display", ["markdown", "widget", "text"])
@pytest.mark.parametrize("fmt", ["markdown", "html", "code", "json", "text"])
def test_payloads_stay_inert_in_every_mode_and_format(
    kernel: Kernel, display: str, fmt: str
) -> None:
    kernel.run(f"%config KoineMagics.display = {display!r}")
    bundles = check_cell(kernel, f"%%koine --format {fmt}\n[[chunks=12]] {{payload}}")
    results = [b for where, b in bundles if where == "execute_result"]
    if display == "text":  # printed as it comes: plain text only
        assert all(set(b) <= {"text/plain"} for where, b in bundles if "widget" not in where)
        return
    assert len(results) == 1
    if fmt == "markdown":
        # Markdown is kept: the answer's paragraphs and its safe parts still render
        html = results[0]["text/html"]
        assert "<p>" in html and MARK in html  # shown, as text
        assert "cover" in html
    if fmt == "html":  # the model's HTML, its safe parts kept
        html = results[0]["text/html"]
        assert ">click</a>" in html and ">cover</div>" in html
    assert MARK in results[0]["text/plain"]  # the plain text is the answer as it came


def test_no_stream_and_line_answers_stay_inert(kernel: Kernel) -> None:
    kernel.run("%config KoineMagics.display = 'markdown'")
    check_cell(kernel, "%%koine --no-stream\n{payload}")
    check_cell(kernel, "%koine --no-stream {payload}")
    check_cell(kernel, "%koine {payload}")


def test_replayed_answers_stay_inert(kernel: Kernel, tmp_path: Any) -> None:
    ledger = tmp_path / "replay.sqlite3"
    kernel.run(f"%koine replay record --ledger {str(ledger)!r}")
    check_cell(kernel, "%%koine\n{payload}")
    kernel.run(f"%koine replay strict --ledger {str(ledger)!r}")
    try:
        for display in ("markdown", "widget"):
            kernel.run(f"%config KoineMagics.display = {display!r}")
            msgs, reply = kernel.run("%%koine\n{payload}")
            assert reply["content"]["status"] == "ok", reply["content"]
            (result,) = of_type(msgs, "execute_result")
            assert result["content"]["metadata"]["koine"]["source"] == "replay"
            for where, bundle in published(msgs):
                if "widget-state" not in bundle:
                    assert_inert(bundle, f"replayed {display}: {where}")
    finally:
        kernel.run("%koine replay off")


def test_deep_objects_draw_without_recursion_errors(kernel: Kernel) -> None:
    code = (
        "from koine_jupyter import ObjectView\n"
        "from koine_jupyter.views.object import object_html\n"
        "deep = {}\n"
        "for _ in range(20000):\n"
        "    deep = {'a': deep, 'x': '<img src=x onerror=window.koinePwned=1>'}\n"
        "html = object_html(deep)\n"
        "assert '…' in html and '<img' not in html and '&lt;img' in html\n"
        "print(len(html))"
    )
    _, reply = kernel.run(code)
    assert reply["content"]["status"] == "ok", reply["content"]


class _HostileHealth(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {
                "status": f"<img src=x onerror=window.{MARK}=1>",
                "claudeCli": f"[x](javascript:window.{MARK}=1) | <script>{MARK}</script>",
                "timestamp": "now",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_health_from_a_hostile_gateway_stays_inert(kernel: Kernel) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HostileHealth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        _, reply = kernel.run(f"%koine connect {url}")
        assert reply["content"]["status"] == "ok", reply["content"]
        msgs, reply = kernel.run("%koine health")
        assert reply["content"]["status"] == "ok", reply["content"]
        (result,) = of_type(msgs, "execute_result")
        data = result["content"]["data"]
        assert "text/markdown" not in data
        assert MARK in data["text/html"]  # shown, as text
        assert_inert(data, "%koine health")
        kernel.run("%koine status")
    finally:
        server.shutdown()
        server.server_close()
        kernel.run("%koine disconnect")
        _, reply = kernel.run("%koine connect --auto")  # back to $KOINE_BASE_URL
        assert reply["content"]["status"] == "ok"


def test_nbconvert_html_export_has_no_live_payload(koine_gateway_server: Any) -> None:
    from nbconvert import HTMLExporter

    cells = [
        "%load_ext koine_jupyter",
        f"payload = {PROMPT!r}",
        "%config KoineMagics.display = 'markdown'",
        "%%koine\n{payload}",
        "%%koine --format html\n{payload}",
        "%koine --no-stream {payload}",
    ]
    nb = new_notebook(cells)
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": "."}}
    ).execute(env=kernel_env(koine_gateway_server))
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert sum(o["output_type"] == "execute_result" for o in outputs) == 3
    # the saved notebook (reopened elsewhere) carries nothing live
    saved = nbformat.reads(nbformat.writes(nb), as_version=4)
    for cell in saved.cells:
        for output in cell.get("outputs", []):
            assert_inert(dict(output.get("data", {})), "saved notebook")
    body, _ = HTMLExporter().from_notebook_node(saved)
    assert MARK in body  # the payloads are there, as text
    # nbconvert's own template has scripts; none of them, and no attribute, holds a payload
    live = [part for part in live_parts(body) if MARK in part]
    assert not live, live


def test_the_line_magic_fills_braces_once(kernel: Kernel) -> None:
    """Text inside a variable's value is never filled again: a value (or a model answer passed
    on) holding ``{os.environ[...]}`` is sent as written, not resolved against the namespace."""
    setup = (
        "import os\n"
        "evil = '{os.environ[\"KOINE_AUTH_KEY\"]}'\n"
        "ans = 'Echo: see {os.environ[\"KOINE_AUTH_KEY\"]} and {evil}'\n"
        "key = os.environ['KOINE_AUTH_KEY']"
    )
    _, reply = kernel.run(setup)
    assert reply["content"]["status"] == "ok"
    for line in (
        "%koine --no-stream --out a1 tell me {evil}",
        "%koine --out a2 follow up on {ans}",
    ):
        _, reply = kernel.run(line)
        assert reply["content"]["status"] == "ok", reply["content"]
    check = (
        "assert key not in a1.text and '{os.environ' in a1.text, a1.text\n"
        "assert key not in a2.text and '{evil}' in a2.text, a2.text"
    )
    _, reply = kernel.run(check)
    assert reply["content"]["status"] == "ok", reply["content"]
