"""End to end: a person's view of ``%%koine`` in JupyterLab, in headless Chromium.

The local gateway streams every piece 70 ms apart; the test runs the cells of
``koine_browser.ipynb`` one by one and samples each output area in the page while it runs:

* the text answer grows on screen (in ipywidgets, the mode "auto" picks under JupyterLab), each
  look is a prefix of the answer, and the final result equals the answer's Markdown rendering;
* ``--schema`` fields show up while the object is still streaming;
* ``extract``'s progress bar moves, and the final table has every row.

It fails on "Loading widget...", a widget error, an error output, or a view that never
rendered. Screenshots of each step go to ``$KOINE_SCREENSHOTS`` (``docs/screenshots`` for the
README) or a temporary directory.
"""

from __future__ import annotations

import itertools
import statistics

import pytest

from koine_jupyter.views._markdown import to_html
from koine_sdk.testing._directives import parse_directives

from . import _dom
from .conftest import NotebookPage

pytestmark = pytest.mark.browser


def growth_table(samples: list[_dom.Sample], width: int = 12) -> str:
    """A few (time, length) pairs, for the report and failure messages."""
    if not samples:
        return "(no samples)"
    step = max(1, len(samples) // width)
    picked = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    return ", ".join(f"{s.t:.2f}s:{len(s.live)}" for s in picked)


GLITCH_MAX = 0.3  # seconds


def glitch_runs(samples: list[_dom.Sample], expected: str) -> list[tuple[float, float, str]]:
    """Spans of consecutive looks whose text was not a start of ``expected``: (first look,
    next good look, the first bad text)."""
    runs: list[tuple[float, float, str]] = []
    start: _dom.Sample | None = None
    for s in samples:
        good = expected.startswith(_dom.plain(s.live))
        if not good and start is None:
            start = s
        elif good and start is not None:
            runs.append((start.t, s.t, start.live))
            start = None
    if start is not None:
        runs.append((start.t, samples[-1].t, start.live))
    return runs


def check_no_widget_failure(run: _dom.Run) -> None:
    """The outputs never showed "Loading widget...", a widget error or an error output."""
    loading = [s for s in run.samples if s.loading]
    assert not loading, (
        f'"Loading widget..." seen in {len(loading)} of {len(run.samples)} samples '
        f"(first at {loading[0].t:.2f} s): {loading[0].text[:300]!r}"
    )
    broken = [s for s in run.samples if s.widget_error]
    assert not broken, f"widget error shown: {broken[0].text[:300]!r}"
    errors = [s for s in run.samples if s.stderr]
    assert not errors, f"error output: {errors[0].stderr[:1000]}"
    assert run.error is None, f"the run command failed: {run.error}"
    assert run.final.prompt.startswith("[") and run.final.prompt[1:-2].isdigit(), run.final.prompt


def expected_answer(notebook: NotebookPage, index: int) -> str:
    """What the echo model answers to the cell's prompt."""
    body = notebook.cell_sources[index].split("\n", 1)[1]
    prompt, _ = parse_directives(body)
    return f"Echo: {prompt}"


def test_text_answer_grows_on_screen(notebook: NotebookPage) -> None:
    page = notebook.page
    assert _dom.has_widget_manager(page), "the ipywidgets JupyterLab extension is not loaded"
    index = notebook.cell_index("%%koine --out answer")
    answer = expected_answer(notebook, index)
    expected_html = to_html(answer)
    expected_text = _dom.squash(_dom.rendered_text(page, expected_html))

    _dom.run_cell(page, index)
    shot = _dom.screenshot_when(  # mid-stream, once about half of the answer is on screen
        page,
        index,
        notebook.screenshots / "koine-magic-streaming.png",
        lambda s: len(s.live) > len(answer) // 2,
    )
    run = _dom.wait_cell_done(page, index)
    _dom.screenshot_cell(page, index, notebook.screenshots / "koine-magic-answer.png")
    notebook.keep("text", run)

    check_no_widget_failure(run)
    live = [s for s in run.while_running() if s.live]
    notebook.report(f"text: {len(run.samples)} samples, finished at {run.finished:.2f} s")
    notebook.report(f"text: rendered length over time: {growth_table(live)}")
    assert shot, "no screenshot mid-stream: the answer was never half visible while running"
    # drawn by ipywidgets (the mode "auto" picks for a notebook in JupyterLab)
    assert live, f"nothing was drawn while the cell ran; last: {run.final.text[:300]!r}"
    assert all(s.widgets > 0 for s in live), "the live view was not drawn with widgets"
    # it grows: many distinct lengths over seconds; what is on screen is the start of the
    # answer (a look taken between two widget updates may show a paragraph twice, for a frame
    # or two: allowed, measured, but not for longer than GLITCH_MAX seconds)
    expected_plain = _dom.plain(_dom.rendered_text(page, expected_html))
    consistent = [s for s in live if expected_plain.startswith(_dom.plain(s.live))]
    lengths = [len(_dom.plain(s.live)) for s in consistent]
    distinct = sorted(set(lengths))
    assert len(distinct) >= 10, f"only {len(distinct)} distinct lengths: {distinct}"
    assert consistent[-1].t - consistent[0].t >= 1.5, growth_table(consistent)
    assert lengths == sorted(lengths), f"the text shrank: {growth_table(consistent, 40)}"
    glitches = glitch_runs(live, expected_plain)
    for start, end, example in glitches:
        notebook.report(
            f"text: glitch from {start:.3f} s to {end:.3f} s ({(end - start) * 1000:.0f} ms): "
            f"{example!r}",
        )
    long = [(a, b) for a, b, _ in glitches if b - a > GLITCH_MAX]
    assert not long, f"the text on screen was not the answer's start for longer: {long}"
    # the status line ticks while running, and says done at the end
    assert any(s.status.startswith("⏳") for s in live)
    assert run.final.status.startswith("✓"), run.final.status
    # the view never went empty between the live answer and the result (no flicker at the swap)
    started = next(i for i, s in enumerate(run.samples) if s.live)
    empty = [s.t for s in run.samples[started:] if s.running and not s.live and not s.result_text]
    assert not empty, f"the cell showed nothing at {empty[:5]} s while it was still running"
    # the final output is the answer's Markdown rendering
    final = run.final
    assert final.result_mime == "text/html", final.result_mime  # rendered by us, sanitized
    assert final.result_text is not None
    assert _dom.squash(final.result_text) == expected_text, (final.result_text, answer)
    assert _dom.result_structure(page, index) == _dom.html_structure(page, expected_html)
    # the live view went back to its placeholder: the answer is shown once
    assert final.live == "", final.live
    tallest = max(consistent, key=lambda s: s.live_height)
    notebook.report(
        f"text: live view {tallest.live_height} px tall at {tallest.t:.2f} s "
        f"({len(tallest.live)} chars); final answer {final.result_height} px "
        f"({len(final.result_text)} chars)"
    )
    rates = [b.t - a.t for a, b in itertools.pairwise(live)]
    notebook.report(
        f"text: {len(distinct)} distinct lengths from {live[0].t:.2f} s to {live[-1].t:.2f} s, "
        f"final {len(final.result_text)} chars; median sample gap "
        f"{statistics.median(rates) * 1000:.0f} ms",
    )


def object_fields(sample: _dom.Sample, names: list[str]) -> list[str]:
    return [n for n in names if n in sample.live]


def test_schema_fields_fill_in_before_the_end(notebook: NotebookPage) -> None:
    page = notebook.page
    index = notebook.cell_index("%%koine --schema Recipe")
    names = ["title", "servings", "ingredients", "steps"]

    _dom.run_cell(page, index)
    shot = _dom.screenshot_when(  # some fields there, not all
        page,
        index,
        notebook.screenshots / "koine-schema-filling.png",
        lambda s: "ingredients" in s.live,
    )
    run = _dom.wait_cell_done(page, index)
    _dom.screenshot_cell(page, index, notebook.screenshots / "koine-schema-result.png")
    notebook.keep("schema", run)

    check_no_widget_failure(run)
    # while it fills in (⏳): once the status says ✓ the view is handing over to the result
    live = [s for s in run.while_running() if s.live and not s.status.startswith("✓")]
    stages = [(round(s.t, 2), len(object_fields(s, names))) for s in live]
    notebook.report(f"schema: fields visible over time: {stages[:: max(1, len(stages) // 12)]}")
    assert live, f"nothing was drawn while the cell ran; last: {run.final.text[:300]!r}"
    assert all(s.widgets > 0 for s in live)
    first = next(s for s in live if object_fields(s, names))
    # most fields visible while it ran (the very last one may land with the final render, when
    # the throttled view is replaced by the result on a busy machine)
    complete = [s for s in live if len(object_fields(s, names)) >= len(names) - 1]
    partial = [s for s in live if 0 < len(object_fields(s, names)) < len(names)]
    assert partial, "no look showed some fields but not all"
    assert shot, "no screenshot while the object was filling in"
    assert complete, "the later fields never appeared while the stream ran"
    assert run.finished - first.t >= 0.5, (first.t, run.finished)
    counts = [len(object_fields(s, names)) for s in live]
    assert counts == sorted(counts), f"fields disappeared: {stages}"
    assert run.final.result_text is not None
    for name in names:
        assert f"{name}=" in run.final.result_text, run.final.result_text
    assert run.final.result_text.startswith("Recipe("), run.final.result_text
    notebook.report(
        f"schema: first field at {first.t:.2f} s, {len(names) - 1}+ at {complete[0].t:.2f} s, "
        f"cell finished at {run.finished:.2f} s",
    )


def test_extract_progress_moves_and_table_has_every_row(notebook: NotebookPage) -> None:
    page = notebook.page
    index = notebook.cell_index("notes = pd.Series(")
    rows = 16
    _dom.run_cell(page, index)
    shot = _dom.screenshot_when(  # the bar about half way
        page,
        index,
        notebook.screenshots / "koine-extract-progress.png",
        lambda s: (s.progress or 0) >= 40,
    )
    run = _dom.wait_cell_done(page, index)
    _dom.screenshot_cell(page, index, notebook.screenshots / "koine-extract-table.png")
    notebook.keep("extract", run)

    check_no_widget_failure(run)
    bar = [s for s in run.while_running() if s.progress is not None]
    values = [s.progress for s in bar]
    notebook.report(
        "extract: progress over time: "
        + ", ".join(f"{s.t:.2f}s:{s.progress:.0f}%" for s in bar[:: max(1, len(bar) // 12)]),
    )
    assert bar, f"no progress bar was drawn; last: {run.final.text[:300]!r}"
    assert shot, "no screenshot with the bar half way"
    middle = sorted({v for v in values if v is not None and 0 < v < 100})
    assert len(middle) >= 3, f"the bar did not move in steps: {middle}"
    assert values == sorted(values), "the progress bar went back"
    final = run.final
    assert final.progress == 100, final.progress
    assert final.progress_class is not None and "success" in final.progress_class
    assert final.progress_label.startswith(f"{rows}/{rows} done"), final.progress_label
    # the table: every row, in the input's order, no errors
    assert final.rows == rows, f"{final.rows} rows in the result table"
    assert final.result_text is not None
    for i in range(rows):
        assert str(100 + i) in final.result_text
    notebook.report(
        f"extract: {len(middle)} intermediate bar positions, {rows} rows, "
        f"cell finished at {run.finished:.2f} s",
    )


def test_an_answer_carrying_scripts_runs_nothing(notebook: NotebookPage) -> None:
    """The echo model answers with an image whose onerror sets a flag, a script, and
    javascript: links: after the answer is drawn (live and final) and its links are clicked, the
    flag is still unset and no image was loaded."""
    page = notebook.page
    index = notebook.cell_index("%%koine --out hostile")
    _dom.run_cell(page, index)
    run = _dom.wait_cell_done(page, index)
    check_no_widget_failure(run)
    assert run.final.result_text is not None and "untrusted" in run.final.result_text
    # the javascript: links lost their target; clicking them does nothing (web links are left
    # alone: they would navigate away from JupyterLab)
    for link in page.locator(".jp-Cell").nth(index).locator("a:not([href^='http'])").all():
        try:
            link.click(timeout=2000, no_wait_after=True)
        except Exception:
            pass  # a link without a target is not clickable: nothing to run either
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.koinePwned") is None
    images = page.locator(".jp-Cell").nth(index).locator(".jp-OutputArea img").count()
    assert images == 0
    notebook.report("payload: no script ran, no remote image loaded")
