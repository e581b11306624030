"""The README as a new user meets it: its examples and Python snippets run against the local
gateway. (The two set-up commands are run verbatim by .ci/run.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from koine_sdk import __version__

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _env(**extra: str) -> dict[str, str]:
    # No gateway from the environment; the ledger stays the test's own (tests/conftest.py).
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOINE_") or k == "KOINE_LEDGER"}
    env.update(extra)
    return env


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_wheel_in_install_section_is_this_version() -> None:
    wheels = set(re.findall(r"koine_sdk-\S+?\.whl", README))
    assert wheels == {f"koine_sdk-{__version__}-py3-none-any.whl"}


def test_setup_commands_are_in_ci() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    bash = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    setup = [b.strip() for b in bash if b.startswith("python3 -m venv .venv && ")]
    assert len(setup) == 2
    assert "README_SETUP" in ci  # .ci/run extracts and runs them verbatim


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("hello.py", "Echo: Hello, how are you?"),
        ("stream.py", "Echo: Write a haiku about rivers"),
        ("extract_recipe.py", "serves"),
        ("stream_object.py", "final:"),
        ("conversation.py", "previous: My name is Ada."),
    ],
)
def test_examples_run_offline(script: str, expected: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert expected in out.stdout, out.stdout + out.stderr


def test_example_uses_real_gateway_when_configured(koine_gateway: Any) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "hello.py")],
        env=_env(KOINE_BASE_URL=koine_gateway.base_url, KOINE_AUTH_KEY=koine_gateway.auth_key),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "local gateway" not in out.stdout
    assert koine_gateway.requests and koine_gateway.requests[-1].path == "/generate-text"


def test_quick_start_snippets_run(koine_gateway: Any) -> None:
    blocks = _python_blocks()
    async_start = next(b for b in blocks if "asyncio.run(main())" in b)
    sync_start = next(b for b in blocks if "create_koine_sync() as koine" in b)
    async_code = async_start.replace('"http://localhost:3100"', repr(koine_gateway.base_url))
    async_code = async_code.replace('"your-api-key"', repr(koine_gateway.auth_key))
    for code in (async_code, sync_start):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=_env(KOINE_BASE_URL=koine_gateway.base_url, KOINE_AUTH_KEY=koine_gateway.auth_key),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "Echo: Hello" in out.stdout, out.stderr


def test_every_error_code_is_documented() -> None:
    from typing import get_args

    from koine_sdk import ErrorCode

    reference = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    for code in get_args(ErrorCode):
        assert f"`{code}`" in reference, code
