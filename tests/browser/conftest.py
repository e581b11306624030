"""Fixtures of the browser test: the local gateway, a JupyterLab server and a headless Debian
Chromium driven by Playwright, with the test notebook open and its kernel ready.

Everything runs on 127.0.0.1 in a temporary root; nothing of the user's Jupyter configuration
is read (``JUPYTER_CONFIG_DIR``, ``JUPYTER_DATA_DIR``, ``JUPYTER_RUNTIME_DIR``, ``IPYTHONDIR``
and the JupyterLab settings all point into it). The kernel is the venv's Python: a ``python3``
kernelspec written into the temporary ``JUPYTER_PATH`` runs ``sys.executable``.

Missing Chromium, Playwright or JupyterLab skips the tests; ``KOINE_BROWSER_REQUIRED=1`` (CI)
turns that skip into a failure, so a broken setup cannot pass unnoticed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# the test notebook is data, not a test (nbval would try to run it without a gateway)
collect_ignore_glob = ["*.ipynb"]

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "koine_browser.ipynb"
KERNEL_NAME = "Python 3 (ipykernel)"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# JupyterLab user settings: every cell in the DOM (no virtual scrolling), no news, no update
# check, no autosave of the test notebook.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}
DISABLED_LAB_PLUGINS = ["@jupyterlab/apputils-extension:announcements"]


def _missing(what: str) -> None:
    message = f"browser test needs {what}"
    if os.environ.get("KOINE_BROWSER_REQUIRED") == "1":
        pytest.fail(f"{message} (KOINE_BROWSER_REQUIRED=1; see .ci/browser-setup.sh)")
    pytest.skip(message)


def chromium_path() -> str | None:
    env = os.environ.get("KOINE_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0): read its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# -- the local gateway ------------------------------------------------------------------------


@dataclass
class Gateway:
    base_url: str
    auth_key: str
    process: subprocess.Popen[bytes]


GATEWAY_OPTIONS = [
    # every streamed piece 70 ms apart: a person, and the test, can watch the answer grow
    "--chunk-delay=0.07",
    # 0.3 s before each response and 2 non-streaming requests at once: extract takes rounds
    "--first-byte-delay=0.3",
    "--max-nonstreaming=2",
]


@pytest.fixture(scope="session")
def browser_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The local gateway, ``koine-gateway`` (``python -m koine_sdk.testing``), in its own
    process: in this one it would share the GIL with Playwright and slow down."""
    port = free_port()
    key = f"koine-browser-{secrets.token_hex(8)}"
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    command = [sys.executable, "-m", "koine_sdk.testing", f"--port={port}", f"--auth-key={key}"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, *GATEWAY_OPTIONS],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", key, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the gateway exited: {log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{gateway.base_url}/health", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"the gateway did not answer: {log.read_text(errors='replace')}")
                time.sleep(0.1)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# -- JupyterLab ---------------------------------------------------------------------------------


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    kernel_pids: set[int] = field(default_factory=lambda: set[int]())

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def _lab_home(base: Path) -> dict[str, str]:
    """A private Jupyter home under ``base``; returns its environment variables."""
    config, data, runtime, share = (base / n for n in ("config", "data", "runtime", "share"))
    settings = config / "lab" / "user-settings"
    for name, value in LAB_SETTINGS.items():
        _write_json(settings / name, value)
    _write_json(
        config / "labconfig" / "page_config.json",
        {"disabledExtensions": dict.fromkeys(DISABLED_LAB_PLUGINS, True)},
    )
    # the kernel the test notebook asks for ("python3") is this interpreter (the venv)
    _write_json(
        share / "kernels" / "python3" / "kernel.json",
        {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": KERNEL_NAME,
            "language": "python",
            "metadata": {"debugger": False},
        },
    )
    (base / "ipython").mkdir(exist_ok=True)
    runtime.mkdir(exist_ok=True)
    return {
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_PATH": str(share),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(config / "lab" / "workspaces"),
        "IPYTHONDIR": str(base / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }


def _wait_ready(lab: Lab, deadline: float) -> None:
    while True:
        if lab.process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {lab.process.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("GET", "/api/status")
            return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not answer within 60 s:\n{lab.log_tail()}")
        time.sleep(0.2)


def _stop_lab(lab: Lab) -> None:
    """Shut the server down cleanly (it stops its kernels), then end whatever is left: the
    server by its PID, the kernels it started (their own process sessions) by theirs."""
    lab.kernel_pids.update(children_of(lab.process.pid))
    with contextlib.suppress(Exception):
        lab.api("POST", "/api/shutdown")
    try:
        lab.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        lab.process.terminate()
        try:
            lab.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            lab.process.kill()
            lab.process.wait(timeout=5)
    for pid in sorted(lab.kernel_pids):
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def jupyter_lab(
    browser_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 with a token, serving a temporary root that holds a copy of the
    test notebook; kernels inherit the gateway's URL and key from its environment."""
    if importlib_missing("jupyterlab"):
        _missing("JupyterLab (pip install 'koine-sdk[browser]')")
    if importlib_missing("jupyterlab_widgets"):
        _missing("jupyterlab_widgets (the ipywidgets extension for JupyterLab)")
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "JUPYTER"))}
    env.pop("KOINE_DISPLAY", None)  # the test checks what "auto" picks in JupyterLab
    env.update(_lab_home(base))
    env.update(
        KOINE_BASE_URL=browser_gateway.base_url,
        KOINE_AUTH_KEY=browser_gateway.auth_key,
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    token = secrets.token_hex(16)
    log = base / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.terminals_enabled=False",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, process, log)
    try:
        _wait_ready(lab, time.monotonic() + 60)
        yield lab
    finally:
        _stop_lab(lab)


def importlib_missing(name: str) -> bool:
    import importlib

    try:
        importlib.import_module(name)
    except ImportError:
        return True
    return False


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    if importlib_missing("playwright.sync_api"):
        _missing("Playwright (pip install 'koine-sdk[browser]')")
    path = chromium_path()
    if path is None:
        _missing("Chromium (apt-get install chromium)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$KOINE_SCREENSHOTS`` (e.g. ``docs/screenshots`` to refresh the
    README's pictures), else a temporary directory (printed in the test output)."""
    env = os.environ.get("KOINE_SCREENSHOTS")
    path = Path(env) if env else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class NotebookPage:
    """The test notebook open in JupyterLab, its kernel idle."""

    page: Any
    lab: Lab
    gateway: Gateway
    screenshots: Path
    console: list[str]
    cell_sources: list[str]
    artifacts: Path
    kernel_pid: int | None = None

    def keep(self, name: str, run: Any) -> Path:
        """Save every sample of ``run`` (a watched cell) as JSON in the artifacts."""
        import dataclasses

        path = self.artifacts / f"{name}-samples.json"
        path.write_text(json.dumps(dataclasses.asdict(run), indent=1, ensure_ascii=False))
        return path

    def report(self, line: str) -> None:
        """Print a measurement and keep it in ``artifacts/measurements.txt``."""
        print(line)
        with (self.artifacts / "measurements.txt").open("a") as out:
            out.write(line + "\n")

    def cell_index(self, startswith: str) -> int:
        for i, source in enumerate(self.cell_sources):
            if source.startswith(startswith):
                return i
        raise AssertionError(f"no cell starts with {startswith!r}")


@pytest.fixture(scope="module")
def notebook(
    chromium: str, jupyter_lab: Lab, browser_gateway: Gateway, screenshot_dir: Path
) -> Iterator[NotebookPage]:
    """Chromium (headless, fresh profile) showing the test notebook, with the first code cell
    (imports, models, ``%load_ext koine_jupyter``) already run."""
    from playwright.sync_api import sync_playwright

    from . import _dom

    sources = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"]]
    profile = jupyter_lab.root.parent / "chromium-profile"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 900},
            device_scale_factor=1,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            nb = NotebookPage(
                page,
                jupyter_lab,
                browser_gateway,
                screenshot_dir,
                console,
                sources,
                artifacts=jupyter_lab.root.parent,
            )
            url = f"{jupyter_lab.url}/lab/tree/{NOTEBOOK.name}?token={jupyter_lab.token}"
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            _dom.wait_notebook_ready(page, NOTEBOOK.name, KERNEL_NAME)
            setup = nb.cell_index("import os")
            _dom.run_cell(page, setup)
            _dom.wait_cell_done(page, setup, timeout=60)
            text = _dom.output_text(page, setup)
            assert "kernel pid" in text, f"setup cell output: {text!r}"
            nb.kernel_pid = int(text.split("kernel pid", 1)[1].split()[0])
            jupyter_lab.kernel_pids.add(nb.kernel_pid)
            kernel_python = text.split("·", 1)[1].strip()
            assert kernel_python == sys.executable, (kernel_python, sys.executable)
            yield nb
        finally:
            context.close()
