"""What the browser test reads from, and does to, the JupyterLab page.

Cells are driven through JupyterLab's own command registry (``window.jupyterapp``, exposed by
``--LabApp.expose_app_in_browser``), the way the Run menu does it. A cell's output area is
watched by a sampler running *in the page* (every 25 ms), so the measured growth is what the
DOM showed, not what a round-trip from Python happened to catch.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

WIDGETS_PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"
STATUS_MARKS = "⏳✓✗⏹"
SAMPLE_MS = 25

_READY_JS = """
([name, kernelName]) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return 'JupyterLab app not exposed yet';
  const panel = app.shell.currentWidget;
  if (!panel || !panel.context || !panel.sessionContext || !panel.content)
    return 'no notebook in the main area';
  if (!panel.context.path.endsWith(name)) return 'current widget: ' + panel.context.path;
  if (!panel.context.isReady) return 'notebook loading';
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel) return 'no kernel attached';
  if (kernel.connectionStatus !== 'connected') return 'kernel ' + kernel.connectionStatus;
  if (kernel.status !== 'idle') return 'kernel ' + kernel.status;
  const label = panel.node.querySelector('.jp-Toolbar-kernelName');
  const shown = label ? label.textContent.trim() : '';
  if (shown !== kernelName) return 'toolbar kernel name: ' + JSON.stringify(shown);
  const indicator = panel.node.querySelector('.jp-Notebook-ExecutionIndicator');
  if (indicator && indicator.getAttribute('data-status') !== 'idle')
    return 'execution indicator: ' + indicator.getAttribute('data-status');
  return 'ready';
}
"""

# installs window.__koine: snapshot(i) of a cell's outputs, watch(i) / run(i) with a sampler
_INSTALL_JS = r"""
(sampleMs) => {
  if (window.__koine) return;
  const marks = /^[⏳✓✗⏹]/;
  const cellNode = (i) => document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  // The live view is whatever widgets the cell displayed (their structure is the view's own
  // business): its text is theirs, less the status line (a leaf element starting with a mark).
  const statusLeaves = (root) => [...root.querySelectorAll('*')].filter(
    (e) => e.children.length === 0 && marks.test(e.textContent.trim()));
  const snapshot = (i) => {
    const cell = cellNode(i);
    const area = cell.querySelector('.jp-OutputArea');
    const prompt = (cell.querySelector('.jp-InputPrompt') || {}).textContent || '';
    const outputs = [...area.children].map((c) => c.querySelector('.jp-OutputArea-output'))
      .filter((o) => o);
    const roots = outputs.filter((o) => o.querySelector('.jupyter-widgets'));
    const progress = area.querySelector('.widget-hprogress, .widget-vprogress, .widget-progress');
    const bar = progress && progress.querySelector('.progress-bar');
    const labelNode = progress && progress.parentElement.querySelector('.widget-html-content');
    let live = '', liveHeight = 0;
    const status = [];
    for (const root of progress ? [] : roots) {
      const leaves = statusLeaves(root);
      status.push(...leaves.map((e) => e.textContent.trim()));
      const clone = root.cloneNode(true);
      statusLeaves(clone).forEach((e) => e.remove());
      live += clone.textContent;
      liveHeight += root.getBoundingClientRect().height -
        leaves.reduce((h, e) => h + e.getBoundingClientRect().height, 0);
    }
    const result = [...area.children].find(
      (c) => c.classList.contains('jp-OutputArea-executeResult'));
    const resultBody = result && result.querySelector('.jp-OutputArea-output');
    const stderr = [...area.querySelectorAll(
      '[data-mime-type="application/vnd.jupyter.stderr"]')].map((e) => e.textContent);
    const all = area.textContent;
    return {
      t: performance.now(),
      prompt: prompt.trim(),
      live,
      blocks: area.querySelectorAll('.widget-output .jp-OutputArea-child').length,
      widgets: area.querySelectorAll('.jupyter-widgets').length,
      status: status.join(' | '),
      loading: /Loading widget/i.test(all),
      widgetError: /Error displaying widget|Failed to (load|create)|model not found/i.test(all),
      stderr: stderr.join('\n'),
      progress: bar ? parseFloat(bar.style.width || '0') : null,
      progressClass: bar ? bar.className : null,
      progressLabel: labelNode ? labelNode.textContent : '',
      resultMime: resultBody ? resultBody.getAttribute('data-mime-type') : null,
      resultText: resultBody ? resultBody.textContent : null,
      liveHeight: Math.round(liveHeight),
      resultHeight: resultBody ? Math.round(resultBody.getBoundingClientRect().height) : 0,
      rows: result ? result.querySelectorAll('table tbody tr').length : 0,
      text: all,
    };
  };
  const watch = (i) => {
    const w = {index: i, samples: [], t0: performance.now(), finished: null, error: null};
    window.__koine.current = w;
    const tick = () => {
      w.samples.push(snapshot(i));
      if (w.finished !== null && performance.now() - w.finished > 600) clearInterval(w.timer);
    };
    w.timer = setInterval(tick, sampleMs);
    tick();
    return w;
  };
  const run = (i) => {
    const app = window.jupyterapp;
    const notebook = app.shell.currentWidget.content;
    notebook.activeCellIndex = i;
    const w = watch(i);
    app.commands.execute('notebook:run-cell').then(
      () => { w.finished = performance.now(); },
      (e) => { w.error = String(e); w.finished = performance.now(); });
  };
  window.__koine = {snapshot, watch, run, current: null};
}
"""


@dataclass
class Sample:
    """One look at a cell's output area; ``t`` in seconds since the cell was started."""

    t: float
    prompt: str
    live: str
    blocks: int  # outputs captured by an Output widget in the live view
    widgets: int
    status: str
    loading: bool
    widget_error: bool
    stderr: str
    progress: float | None
    progress_class: str | None
    progress_label: str
    result_mime: str | None
    result_text: str | None
    rows: int
    text: str
    live_height: int  # px: the live view's blocks (without the status line)
    result_height: int  # px: the cell's result

    @property
    def running(self) -> bool:
        return self.prompt == "[*]:"


@dataclass
class Run:
    """A watched execution of one cell."""

    index: int
    samples: list[Sample]
    finished: float  # seconds after the start when JupyterLab's run command resolved
    error: str | None

    @property
    def final(self) -> Sample:
        return self.samples[-1]

    def while_running(self) -> list[Sample]:
        return [s for s in self.samples if s.t <= self.finished and s.running]


def squash(text: str) -> str:
    """Text without any whitespace: blocks drawn by separate widgets and one rendered
    Markdown document differ only in the whitespace between their elements."""
    return re.sub(r"\s+", "", text)


def plain(text: str) -> str:
    """:func:`squash` without Markdown's markup characters: a growing answer may end inside
    ``*emphasis*`` or a code span, whose opening mark is drawn literally until it closes."""
    return re.sub(r"[\s*_`~#>-]+", "", text)


def wait_notebook_ready(page: Any, name: str, kernel_name: str, timeout: float = 90) -> None:
    """Wait until the notebook is open, its kernel attached and idle, and the toolbar shows the
    kernel's name (the execution indicator alone reads idle before a kernel is attached)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = page.evaluate(_READY_JS, [name, kernel_name])
        if state == "ready":
            page.evaluate(_INSTALL_JS, SAMPLE_MS)
            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
            return
        time.sleep(0.2)
    raise AssertionError(f"notebook not ready after {timeout:.0f} s: {state}")


def has_widget_manager(page: Any) -> bool:
    return bool(page.evaluate("(id) => window.jupyterapp.hasPlugin(id)", WIDGETS_PLUGIN))


def run_cell(page: Any, index: int) -> None:
    """Start running cell ``index`` (Run ▸ Run Selected Cell) and watch its output area."""
    page.evaluate("(i) => window.__koine.run(i)", index)


def latest(page: Any) -> Sample | None:
    """The sampler's most recent look at the watched cell."""
    raw = page.evaluate(
        "() => { const w = window.__koine.current;"
        " return w && w.samples.length ? [w.t0, w.samples[w.samples.length - 1]] : null; }"
    )
    return None if raw is None else _sample(raw[1], raw[0])


def screenshot_when(
    page: Any, index: int, path: Any, ready: Callable[[Sample], bool], timeout: float = 60
) -> bool:
    """While cell ``index`` runs, take a screenshot of it at the first look that is
    ``ready``; ``False`` if the cell finished first. Polls gently: the gateway shares this
    process (and its GIL) with the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = page.evaluate("() => window.__koine.current.finished !== null")
        sample = latest(page)
        if finished:
            return False
        if sample is not None and sample.running and ready(sample):
            screenshot_cell(page, index, path)
            return True
        time.sleep(0.05)
    return False


def wait_cell_done(page: Any, index: int, timeout: float = 60) -> Run:
    """Wait for the run command to resolve, then ~0.6 s more of samples (outputs render
    after the reply); return all samples."""
    deadline = time.monotonic() + timeout
    while True:
        state = page.evaluate(
            "() => { const w = window.__koine.current;"
            " return w ? [w.finished !== null, w.finished !== null &&"
            " performance.now() - w.finished > 650] : null; }"
        )
        if state and state[1]:
            break
        if time.monotonic() > deadline:
            last = latest(page)
            raise AssertionError(
                f"cell {index} still running after {timeout:.0f} s; last sample: {last}"
            )
        time.sleep(0.1)
    raw = page.evaluate(
        "() => { const w = window.__koine.current;"
        " return {t0: w.t0, finished: w.finished, error: w.error, samples: w.samples,"
        " index: w.index}; }"
    )
    assert raw["index"] == index, raw["index"]
    t0 = raw["t0"]
    return Run(
        index=index,
        samples=[_sample(s, t0) for s in raw["samples"]],
        finished=(raw["finished"] - t0) / 1000,
        error=raw["error"],
    )


def _sample(raw: dict[str, Any], t0: float) -> Sample:
    return Sample(
        t=(raw["t"] - t0) / 1000,
        prompt=raw["prompt"],
        live=raw["live"],
        blocks=raw["blocks"],
        widgets=raw["widgets"],
        status=raw["status"],
        loading=raw["loading"],
        widget_error=raw["widgetError"],
        stderr=raw["stderr"],
        progress=raw["progress"],
        progress_class=raw["progressClass"],
        progress_label=raw["progressLabel"],
        result_mime=raw["resultMime"],
        result_text=raw["resultText"],
        rows=raw["rows"],
        text=raw["text"],
        live_height=raw["liveHeight"],
        result_height=raw["resultHeight"],
    )


def output_text(page: Any, index: int) -> str:
    return str(page.evaluate("(i) => window.__koine.snapshot(i).text", index))


def rendered_text(page: Any, html: str) -> str:
    """The text a browser shows for ``html`` (parsed in a detached element)."""
    return str(
        page.evaluate(
            "(html) => { const d = document.createElement('div'); d.innerHTML = html;"
            " return d.textContent; }",
            html,
        )
    )


def result_structure(page: Any, index: int) -> dict[str, int]:
    """How many of each element the cell's result (its execute_result) holds."""
    return dict(
        page.evaluate(
            "(i) => { const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];"
            " const r = cell.querySelector('.jp-OutputArea-executeResult');"
            " const out = {};"
            " for (const tag of ['p', 'strong', 'em', 'ul', 'li', 'pre', 'code'])"
            "   out[tag] = r ? r.querySelectorAll(tag).length : -1;"
            " return out; }",
            index,
        )
    )


def html_structure(page: Any, html: str) -> dict[str, int]:
    return dict(
        page.evaluate(
            "(html) => { const d = document.createElement('div'); d.innerHTML = html;"
            " const out = {};"
            " for (const tag of ['p', 'strong', 'em', 'ul', 'li', 'pre', 'code'])"
            "   out[tag] = d.querySelectorAll(tag).length;"
            " return out; }",
            html,
        )
    )


def screenshot_cell(page: Any, index: int, path: Any) -> None:
    """A PNG of one cell (input and outputs), cropped to it."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.screenshot(path=str(path), animations="disabled", caret="hide")
