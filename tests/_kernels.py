"""Helpers for tests that start real kernels: the environment a kernel gets."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import nbformat
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel


def kernel_env(gateway: Any, **extra: str) -> dict[str, str]:
    """This process's environment for a kernel, pointed at ``gateway``, without anything that
    would change the display mode the kernel picks (JupyterLab's, VS Code's, KOINE_DISPLAY)."""
    env = dict(os.environ)
    for name in ("JPY_SESSION_NAME", "KOINE_DISPLAY", "VSCODE_PID"):
        env.pop(name, None)
    env.update(KOINE_BASE_URL=gateway.base_url, KOINE_AUTH_KEY=gateway.auth_key, **extra)
    return env


def new_notebook(cells: list[str]) -> nbformat.NotebookNode:
    """A notebook of code cells for the python3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


class Kernel:
    def __init__(self, km: KernelManager, kc: BlockingKernelClient) -> None:
        self.km = km
        self.kc = kc

    def run(
        self,
        code: str,
        timeout: float = 30,
        interrupt_after: float | None = None,
        when_drawn: bool = True,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Execute ``code``; return its iopub messages (with arrival times) and the reply.
        ``interrupt_after``: seconds, then Ctrl-C (once a live update was drawn, if
        ``when_drawn``)."""
        msg_id = self.kc.execute(code)
        msgs: list[dict[str, Any]] = []
        start = time.monotonic()
        interrupted = False
        while True:
            wait = 0.05 if interrupt_after is not None and not interrupted else timeout
            try:
                msg = self.kc.get_iopub_msg(timeout=wait)
            except Exception:  # queue.Empty
                msg = None
            now = time.monotonic()
            if (
                interrupt_after is not None
                and not interrupted
                and now - start >= interrupt_after
                and (not when_drawn or any(m["msg_type"] == "update_display_data" for m in msgs))
            ):
                self.km.interrupt_kernel()
                interrupted = True
                msgs.append({"msg_type": "(interrupt sent)", "time": now, "content": {}})
            if msg is None:
                if now - start > timeout:
                    raise TimeoutError(code)
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msg["time"] = now
            msgs.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return msgs, reply


def of_type(msgs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m["msg_type"] == kind]


@contextlib.contextmanager
def koine_kernel(gateway: Any, setup: str = "") -> Iterator[Kernel]:
    """A real python3 kernel pointed at ``gateway`` with koine_jupyter loaded (and ``setup``
    run), shut down afterwards: the fixture of every kernel test."""
    km, kc = start_new_kernel(kernel_name="python3", env=kernel_env(gateway))
    kernel = Kernel(km, kc)
    try:
        _, reply = kernel.run("%load_ext koine_jupyter" + (f"\n{setup}" if setup else ""))
        assert reply["content"]["status"] == "ok", reply["content"]
        yield kernel
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
