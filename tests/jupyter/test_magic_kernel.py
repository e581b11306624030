"""``%%koine`` in a real kernel (ipykernel via jupyter_client / nbclient) against the local
gateway: live updates, the throttle bound, interrupt, errors, and nbval-style determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from _html import answer_text
from _kernels import Kernel, kernel_env, koine_kernel, of_type
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

FIXTURES = Path(__file__).parent / "notebooks_fixtures"


@pytest.fixture(scope="module")
def kernel(koine_gateway_server: Any) -> Iterator[Kernel]:
    with koine_kernel(koine_gateway_server) as k:
        yield k


def test_streams_into_a_display_handle(kernel: Kernel, koine_gateway_server: Any) -> None:
    words = " ".join(f"w{i}" for i in range(30))
    msgs, reply = kernel.run(f"%%koine\n[[chunks=30]] [[slow=0.02]] {words}")
    assert reply["content"]["status"] == "ok"
    displays = of_type(msgs, "display_data")
    updates = of_type(msgs, "update_display_data")
    results = of_type(msgs, "execute_result")
    # the live view starts and ends as the same constant placeholder (nbval sees only that)
    assert [d["content"]["data"] for d in displays] == [{"text/plain": ""}]
    assert updates[-1]["content"]["data"] == {"text/plain": ""}
    # streaming happened: several updates with growing text before the answer
    live = [answer_text(u["content"]["data"]["text/html"]) for u in updates[:-1]]
    assert len(live) >= 4
    assert len(set(live)) >= 4
    # live frames are prefixes of the answer; the answer itself is the cell's result, once
    # and whole (a last full frame, erased at once by the placeholder, is not sent)
    answer = f"Echo: {words}"
    assert all(answer.startswith(frame) for frame in live)
    assert len(results) == 1
    data = results[0]["content"]["data"]
    assert answer_text(data["text/html"]) == answer
    assert "text/markdown" not in data  # raw Markdown would pass model HTML to the frontend
    assert data["text/plain"] == answer
    assert not of_type(msgs, "stream")


def test_throttle_bounds_updates_under_a_fast_stream(kernel: Kernel) -> None:
    msgs, reply = kernel.run("%%koine --out fast\n[[chunks=2000]] [[slow=0.0005]] " + "x " * 3000)
    assert reply["content"]["status"] == "ok"
    updates = of_type(msgs, "update_display_data")
    start = of_type(msgs, "display_data")[0]["time"]
    end = of_type(msgs, "execute_result")[0]["time"]
    duration = max(end - start, 0.05)
    # at most ~20 a second (+ the final full frame and the reset to the placeholder)
    assert len(updates) <= 20 * duration + 3, (len(updates), duration)
    sent = sum(len(json.dumps(u["content"]["data"])) for u in updates)
    print(f"handle mode: {len(updates)} updates in {duration:.2f} s, {sent:,} bytes")
    _, check = kernel.run("assert len(fast.text) == len('Echo: ' + ('x ' * 3000).strip())")
    assert check["content"]["status"] == "ok"


_DRAWING = (
    "display_data",
    "update_display_data",
    "execute_result",
    "clear_output",
    "stream",
    "comm_open",
    "comm_msg",
    "comm_close",
)


def _long_markdown(size: int) -> str:
    """About ``size`` characters of Markdown: paragraphs, lists and a long code block."""
    blocks: list[str] = []
    i = 0
    while sum(len(b) + 2 for b in blocks) < size:
        i += 1
        if i % 40 == 0:
            code = "\n".join(f"    total += item_{j} * {j}" for j in range(60))
            blocks.append(f"```python\ndef step_{i}(items):\n{code}\n```")
        elif i % 5 == 0:
            blocks.append("\n".join(f"- point {i}.{j}: a short item of a list" for j in range(6)))
        else:
            blocks.append(f"Paragraph {i}. " + "Events stream text into the notebook. " * 12)
    return "\n\n".join(blocks)


@pytest.mark.parametrize("mode", ["widget", "markdown", "text"])
def test_a_long_answer_costs_a_small_multiple_of_its_size(
    kernel: Kernel, koine_gateway_server: Any, mode: str
) -> None:
    """A 200 KB answer in 2,000 pieces over ~2 s, counted over iopub: each block is sent about
    once, whatever the mode (the whole text on each update costs 12x the answer for this
    stream, more for slower ones)."""
    text = _long_markdown(200_000)
    step = len(text) // 2000 + 1
    koine_gateway_server.script_text(
        [text[i : i + step] for i in range(0, len(text), step)], chunk_delay=0.001
    )
    msgs, reply = kernel.run(f"%%koine --display {mode} --out long\nanything", timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    sent = sum(len(json.dumps(m["content"])) for m in msgs if m["msg_type"] in _DRAWING)
    print(f"{mode}: {sent:,} bytes over iopub for a {len(text):,}-character answer")
    assert sent <= 3 * len(text), (mode, sent / len(text))
    _, ok = kernel.run(f"assert long.text == {text!r}")
    assert ok["content"]["status"] == "ok"


def test_error_is_short_and_keeps_the_traceback_for_tb(kernel: Kernel) -> None:
    msgs, reply = kernel.run("%%koine\n[[fail]] hello")
    assert reply["content"]["status"] == "error"
    (error,) = of_type(msgs, "error")
    text = "\n".join(error["content"]["traceback"])
    assert "CLI_EXIT_ERROR" in text
    assert "What to do" in text
    assert len(error["content"]["traceback"]) <= 4  # not a page of traceback
    msgs, _ = kernel.run("%tb")
    full = "\n".join(
        m["content"].get("text", "") + "\n".join(m["content"].get("traceback", [])) for m in msgs
    )
    assert "Traceback" in full and "koine_sdk" in full


def test_interrupt_keeps_what_arrived(kernel: Kernel) -> None:
    words = " ".join(f"w{i}" for i in range(200))
    msgs, reply = kernel.run(
        f"%%koine --out cut\n[[chunks=200]] [[slow=0.05]] {words}", interrupt_after=0.6
    )
    sent = next(m["time"] for m in msgs if m["msg_type"] == "(interrupt sent)")
    idle = msgs[-1]["time"]
    assert idle - sent < 1.0  # stopped within a second
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    (error,) = of_type(msgs, "error")
    assert len(error["content"]["traceback"]) == 1
    final = of_type(msgs, "update_display_data")[-1]["content"]["data"]["text/html"]
    assert answer_text(final).startswith("Echo: w0 w1")
    assert "interrupted" in final
    # the kernel is fine afterwards, and the partial answer was kept
    _, ok = kernel.run("assert cut.interrupted and cut.text.startswith('Echo: w0')")
    assert ok["content"]["status"] == "ok"
    msgs, ok = kernel.run("%%koine\nnext")
    assert ok["content"]["status"] == "ok"
    assert of_type(msgs, "execute_result")[0]["content"]["data"]["text/plain"] == "Echo: next"


def test_interrupting_a_request_without_stream_is_one_line(kernel: Kernel) -> None:
    msgs, reply = kernel.run(
        "%koine --no-stream --out cut [[delay=10]] hello", interrupt_after=0.5, when_drawn=False
    )
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    (error,) = of_type(msgs, "error")
    assert len(error["content"]["traceback"]) == 1, error["content"]["traceback"]
    assert "before its answer arrived" in error["content"]["traceback"][0]
    _, ok = kernel.run("assert cut.interrupted and cut.text == '' and not cut.complete")
    assert ok["content"]["status"] == "ok"


def test_the_answer_carries_its_provenance_as_metadata(kernel: Kernel) -> None:
    _, reply = kernel.run("topic = 'SSE'")
    msgs, reply = kernel.run("%%koine --session prov\nAbout {topic}")
    assert reply["content"]["status"] == "ok"
    (result,) = of_type(msgs, "execute_result")
    assert answer_text(result["content"]["data"]["text/html"]) == "Echo: About SSE"
    meta = result["content"]["metadata"]["koine"]
    assert meta["source"] == "live" and meta["session"] == "prov" and meta["model"] is None
    assert meta["references"] == ["topic"]
    assert meta["tokens"]["total"] == meta["tokens"]["input"] + meta["tokens"]["output"] > 0


def test_schema_fields_appear_before_the_end(kernel: Kernel) -> None:
    setup = (
        "from pydantic import BaseModel\n"
        "class Step(BaseModel):\n    text: str\n    minutes: int\n"
        "class Recipe(BaseModel):\n    title: str\n    steps: list[Step]\n"
    )
    _, reply = kernel.run(setup)
    assert reply["content"]["status"] == "ok"
    msgs, reply = kernel.run("%%koine --schema Recipe --out r\n[[items=6]] [[slow=0.02]] a recipe")
    assert reply["content"]["status"] == "ok", reply["content"]
    live = [u["content"]["data"].get("text/html", "") for u in of_type(msgs, "update_display_data")]
    assert any("title" in h and "[5]" not in h for h in live)  # partial frames were drawn
    (result,) = of_type(msgs, "execute_result")
    assert "Recipe(" in result["content"]["data"]["text/plain"]
    _, ok = kernel.run("assert isinstance(r, Recipe) and len(r.steps) == 6")
    assert ok["content"]["status"] == "ok"


def test_widget_mode_sends_each_block_once(koine_gateway_server: Any) -> None:
    km, kc = start_new_kernel(
        kernel_name="python3", env=kernel_env(koine_gateway_server, KOINE_DISPLAY="widget")
    )
    k = Kernel(km, kc)
    try:
        k.run("%load_ext koine_jupyter")
        paragraphs = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(30))
        prompt = json.dumps(paragraphs)
        msgs, reply = k.run(
            f"from koine_jupyter import show_stream\n"
            f"from koine_sdk import create_koine_sync\n"
            f"c = create_koine_sync()\n"
            f"with c.stream_text(prompt={prompt} + ' [[chunks=600]] [[slow=0.002]]') as s:\n"
            f"    answer = show_stream(s)\n"
            f"answer"
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        opens = [m for m in msgs if m["msg_type"] == "comm_open"]
        updates = [m for m in msgs if m["msg_type"] == "comm_msg"]
        displays = of_type(msgs, "display_data")
        # the first display is the live box, whose saved form is the constant placeholder
        assert displays[0]["content"]["data"]["text/plain"] == ""
        blocks = [d["content"]["data"]["text/html"] for d in displays[1:]]
        (result,) = of_type(msgs, "execute_result")
        answer = result["content"]["data"]["text/html"]
        assert len(answer) > 6000
        # the plain-text fallback of a long answer is a preview, not the whole text again
        assert "more characters" in result["content"]["data"]["text/plain"]
        sent = sum(len(json.dumps(m["content"])) for m in updates) + sum(map(len, blocks))
        print(
            f"widget mode: {len(opens)} widgets, {len(updates)} updates, {len(blocks)} "
            f"block messages, {sent:,} bytes for a {len(answer):,}-char answer"
        )
        # a constant set of widgets, not one per paragraph...
        assert len(opens) <= 10
        # ...each finished paragraph sent once (captured by the Output widget; the last ones
        # may still be in the live tail when the answer replaces the view)...
        joined = "".join(blocks)
        counts = [joined.count(f"Paragraph {i} ") for i in range(30)]
        assert max(counts) == 1
        assert all(counts[:25]), counts
        # ...and the whole view costs a small multiple of the answer, not its square
        assert sent <= 3 * len(answer)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_notebook_reexecutes_equal_under_nbval(koine_gateway_server: Any, tmp_path: Path) -> None:
    """Run the fixture notebook with nbclient (saving the outputs as JupyterLab would: the
    final state of every display), then let nbval re-execute it and compare."""
    nb = nbformat.read(FIXTURES / "basic.ipynb", as_version=4)
    env = kernel_env(koine_gateway_server)
    client = NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    answers = [o for o in outputs if o["output_type"] == "execute_result"]
    assert any("Echo:" in o["data"].get("text/plain", "") for o in answers)
    # the saved notebook holds each answer once, not the intermediate frames: the live view
    # is saved as its constant placeholder, the answer as the cell's result
    live, result = nb.cells[2].outputs
    assert live["output_type"] == "display_data" and live["data"] == {"text/plain": ""}
    assert answer_text(result["data"]["text/html"]) == "Echo: Describe SSE"
    assert nb.cells[3].outputs[-1]["data"] == {"text/plain": "Echo: Plain Echo: Describe SSE"}
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(path), "-q", "-p", "no:cacheprovider"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
