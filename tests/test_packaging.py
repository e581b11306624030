"""The distribution as a user gets it: ``python -m build`` makes the sdist and, from the sdist, the
wheel; the wheel (not an editable install) goes into a fresh virtual environment with the
``jupyter,pandas,testing`` extras, and the tour, the ``koine`` and ``koine-gateway`` scripts, the
pytest plugin and a teaching notebook run there from a temporary directory, where nothing can
be imported from the checkout. A file missing from the wheel (``py.typed``, a module, an entry
point) or from the sdist (the captures the tests replay) fails here.

The fresh environment installs from the configured package index and pip's cache, pinned to the
versions of the running environment (so pip finds them in its cache and never resolves anew).
It takes about a minute, mostly pip installing the dependencies.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import nbformat
import pytest

from koine_sdk import __version__

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03-extraction-to-dataframes.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(cmd: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


def _tracked_files() -> list[str]:
    """The repository's files as git knows them (none when this is not a git checkout, e.g. an
    unpacked sdist: then only the required files below are checked)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return []
    out = _run(["git", "ls-files", "-z"], cwd=ROOT)
    return [p for p in out.split("\0") if p and (ROOT / p).is_file()]


def _pins(path: Path) -> Path:
    """The running environment's versions as pip constraints (not this project itself)."""
    lines = sorted(
        {
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in importlib.metadata.distributions()
            if dist.metadata["Name"] and dist.metadata["Name"].lower() != "koine-sdk"
        }
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built the standard way (the wheel from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", out, ROOT], cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> dict[str, Any]:
    """A fresh venv with the wheel and its extras installed, a working directory outside the
    checkout, and an environment that names neither the checkout nor another venv."""
    base = tmp_path_factory.mktemp("user")
    venv, cwd = base / "venv", base / "work"
    cwd.mkdir()
    _run([sys.executable, "-m", "venv", venv], cwd=base)
    bin_dir = venv / "bin"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KOINE_", "PYTHON", "VIRTUAL_ENV", "JUPYTER", "IPYTHON", "JPY_"))
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        JUPYTER_CONFIG_DIR=str(base / "jupyter-config"),
        JUPYTER_DATA_DIR=str(base / "jupyter-data"),
        IPYTHONDIR=str(base / "ipython"),
        # extract's ledger: a file of this test, never the user's cache folder.
        KOINE_LEDGER=str(base / "ledger.sqlite3"),
    )
    (wheel,) = dist.glob("*.whl")
    _run(
        [
            bin_dir / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",  # byte-compiling every dependency would take a third of the time
            "--constraint",
            _pins(base / "pins.txt"),
            f"{wheel}[jupyter,pandas,testing]",
            # To run a notebook and the plugin's fixture from the outside:
            "nbclient",
            "pytest",
        ],
        cwd=cwd,
        env=env,
    )
    return {"python": bin_dir / "python", "bin": bin_dir, "cwd": cwd, "env": env}


def test_sdist_holds_the_repository(dist: Path) -> None:
    """Everything git tracks (the tests' captures, notebooks and their data, the root
    conftest.py, the docs) is in the sdist, so its test suite runs as a clone's does."""
    (sdist,) = dist.glob("*.tar.gz")
    assert sdist.name == f"koine_sdk-{__version__}.tar.gz"
    prefix = f"koine_sdk-{__version__}/"
    with tarfile.open(sdist) as tar:
        names = {m.name.removeprefix(prefix) for m in tar.getmembers() if m.isfile()}
    required = {
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "conftest.py",
        "koine_sdk/py.typed",
        "koine_jupyter/py.typed",
        "notebooks/data/support_tickets.csv",
        "notebooks/nbval-sanitize.cfg",
        "tests/captures/README.md",
        "tests/captures/stream.txt",
        "docs/conf.py",
    }
    assert required <= names, sorted(required - names)
    missing = sorted(set(_tracked_files()) - names)
    assert not missing, missing
    assert not [n for n in names if "__pycache__" in n or n.startswith((".venv/", "dist/"))]


def test_wheel_holds_the_packages_and_entry_points(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    assert wheel.name == f"koine_sdk-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"koine_sdk-{__version__}.dist-info/entry_points.txt").decode()
    expected = {
        p.relative_to(ROOT).as_posix()
        for package in ("koine_sdk", "koine_jupyter")
        for p in (ROOT / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "docs/"))]
    assert "koine = koine_sdk.cli:main" in entry_points
    assert "koine-gateway = koine_sdk.cli._gateway:console" in entry_points
    assert "koine_sdk = koine_sdk.testing._pytest_plugin" in entry_points


def test_tour_runs_from_the_installed_wheel(user: dict[str, Any]) -> None:
    where = _run(
        [user["python"], "-c", "import koine_sdk, koine_jupyter; print(koine_sdk.__file__)"],
        cwd=user["cwd"],
        env=user["env"],
    )
    assert Path(where.strip()).is_relative_to(user["bin"].parent), where  # not the checkout
    out = _run([user["python"], "-m", "koine_sdk"], cwd=user["cwd"], env=user["env"])
    assert "Done." in out.splitlines(), out
    assert "final: Recipe(" in out
    help_text = _run([user["bin"] / "koine-gateway", "--help"], cwd=user["cwd"], env=user["env"])
    assert help_text.startswith("usage: koine-gateway")
    koine_help = _run([user["bin"] / "koine", "--help"], cwd=user["cwd"], env=user["env"])
    assert koine_help.startswith("usage: koine") and "extract" in koine_help


def test_pytest_plugin_serves_the_fixture_from_the_wheel(user: dict[str, Any]) -> None:
    test = user["cwd"] / "test_with_koine_gateway.py"
    test.write_text(
        textwrap.dedent(
            """
            from koine_sdk import create_koine_sync


            def test_echo(koine_gateway):
                with create_koine_sync(
                    base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
                ) as koine:
                    assert koine.generate_text(prompt="hi").text == "Echo: hi"
            """
        ),
        encoding="utf-8",
    )
    out = _run(
        [user["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider", test.name],
        cwd=user["cwd"],
        env=user["env"],
    )
    assert "1 passed" in out, out


def test_notebook_runs_from_the_installed_wheel(user: dict[str, Any]) -> None:
    """The extraction notebook (magics, extract, pandas, its CSV) in a kernel of the fresh venv;
    its extraction statistics equal the saved ones."""
    work: Path = user["cwd"]
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    shutil.copytree(NOTEBOOK.parent / "data", work / "data")
    runner = work / "run_notebook.py"
    runner.write_text(
        textwrap.dedent(
            """
            import sys

            import nbformat
            from nbclient import NotebookClient

            nb = nbformat.read(sys.argv[1], as_version=4)
            nb.cells.append(nbformat.v4.new_code_cell(
                "import sys, koine_jupyter; print(sys.prefix); print(koine_jupyter.__file__)"
            ))
            NotebookClient(nb, timeout=300, kernel_name="python3").execute()
            nbformat.write(nb, sys.argv[2])
            """
        ),
        encoding="utf-8",
    )
    _run([user["python"], runner, NOTEBOOK.name, "executed.ipynb"], cwd=work, env=user["env"])

    executed = nbformat.read(work / "executed.ipynb", as_version=4)
    saved = nbformat.read(NOTEBOOK, as_version=4)
    where = executed.cells[-1].outputs[0].text.splitlines()
    venv = user["bin"].parent
    assert Path(where[0]) == venv and Path(where[1]).is_relative_to(venv), where

    def results(nb: Any, marker: str) -> list[str]:
        return [
            o.data["text/plain"]
            for c in nb.cells
            if c.cell_type == "code" and marker in c.source
            for o in c.outputs
            if o.output_type == "execute_result"
        ]

    for marker in ("stats = ", "again = "):
        assert results(executed, marker) == results(saved, marker) != []
    errors = [
        json.dumps(o)
        for c in executed.cells
        if c.cell_type == "code" and "raises-exception" not in c.metadata.get("tags", [])
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors, errors
