"""Widget mode in a headless run (nbclient, a real kernel): no cell waits, no answer is lost.

nbclient emulates ``Output`` widgets: while one captures (its ``msg_id`` is set), the cell's
outputs go into the widget's state, and nbclient sends each change back to the kernel on the
shell channel while it waits there for the cell's reply. A capture left open after the live
view ended therefore swallowed the answer (the cell's result) into a closed widget, and the
message it sent for it could cost nbclient the wake-up of the reply: the cell then waited out
its whole timeout (forever without one). The live view ends its capture before it ends.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import nbformat
from _html import answer_text
from _kernels import kernel_env
from nbclient import NotebookClient

CELLS = 20
TIMEOUT = 60  # seconds per cell: far more than one needs; a stalled cell shows in its time


class TimedClient(NotebookClient):
    """nbclient, timing each cell as nbclient itself experiences it (request → reply)."""

    durations: list[float]

    async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kw: Any) -> Any:
        began = time.monotonic()
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kw)
        finally:
            self.durations.append(time.monotonic() - began)


def _prompt(i: int) -> str:
    paragraphs = "\n\n".join(f"Cell {i}, paragraph {p}: " + "word " * 12 for p in range(8))
    return f"%%koine --out a{i}\n[[chunks=60]] [[slow=0.004]] {{who}}: {paragraphs}"


def test_widget_mode_cells_finish_promptly_with_their_answers(
    koine_gateway_server: Any, tmp_path: Path
) -> None:
    nb = nbformat.v4.new_notebook()
    cells = ["%load_ext koine_jupyter\n%config KoineMagics.display = 'widget'\nwho = 'nbclient'"]
    cells += [_prompt(i) for i in range(CELLS)]
    cells.append("print(sum(len(str(globals()[f'a{i}'])) for i in range(20)))")
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = TimedClient(
        nb, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.durations = []
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(kernel_env(koine_gateway_server))
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    durations = client.durations[1 : CELLS + 1]
    print(
        f"{CELLS} widget-mode cells under nbclient: max {max(durations):.2f} s, "
        f"total {sum(durations):.2f} s"
    )
    assert max(durations) < 10, durations  # seconds, against a 60 s timeout: none stalled
    for i, cell in enumerate(nb.cells[1 : CELLS + 1]):
        results = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert len(results) == 1, (i, [o.output_type for o in cell.outputs])
        answer = answer_text(results[0].data["text/html"])
        assert answer.startswith(f"Echo: nbclient: Cell {i}, paragraph 0")
        assert "paragraph 7" in answer
        # the live view: one widget display whose saved form is the constant placeholder
        (live,) = [o for o in cell.outputs if o.output_type == "display_data"]
        assert live.data["text/plain"] == ""
        assert "application/vnd.jupyter.widget-view+json" in live.data
    # no Output widget kept a capture (or an answer) once its cell was over
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    outputs = [m["state"] for m in state.values() if m["model_name"] == "OutputModel"]
    assert outputs and all(not s.get("msg_id") for s in outputs)
    assert not any(o.get("output_type") == "execute_result" for s in outputs for o in s["outputs"])
    # the final status line of each view stays, and says (on hover) what was filled in
    statuses = [
        m["state"]["value"]
        for m in state.values()
        if m["model_name"] == "HTMLModel" and "✓" in m["state"].get("value", "")
    ]
    assert len(statuses) == CELLS
    assert all('title="filled {who}"' in value for value in statuses), statuses[0]
