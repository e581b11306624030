"""``python -m koine_sdk``: the tour runs with no arguments; ``--help`` helps and exits without
starting anything; an unknown option is an error, not ignored."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOINE_")}
    return subprocess.run(
        [sys.executable, "-m", "koine_sdk", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_prints_usage_and_exits_without_a_tour() -> None:
    out = _run("--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m koine_sdk")
    assert "KOINE_BASE_URL" in out.stdout
    assert "Gateway:" not in out.stdout  # no gateway was started, no tour ran


def test_unknown_option_is_an_error() -> None:
    out = _run("--verbose")
    assert out.returncode == 2
    assert "unrecognized arguments: --verbose" in out.stderr
    assert out.stdout == ""


def test_tour_runs_offline_by_default() -> None:
    out = _run()
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Gateway: local gateway at http://127.0.0.1:")
    assert "Done." in lines  # .ci/run greps this line
    assert "final: Recipe(" in out.stdout


def test_tour_uses_the_configured_gateway(koine_gateway: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOINE_")}
    env.update(KOINE_BASE_URL=koine_gateway.base_url, KOINE_AUTH_KEY=koine_gateway.auth_key)
    out = _run(env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(f"Gateway: {koine_gateway.base_url} (from KOINE_BASE_URL)")
    paths = [r.path for r in koine_gateway.requests]
    assert paths == ["/health", "/generate-text", "/stream", "/stream-object"]


def test_tour_reports_a_wrong_key_as_a_koine_error(koine_gateway: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOINE_")}
    env.update(KOINE_BASE_URL=koine_gateway.base_url, KOINE_AUTH_KEY="not-the-key-0123")
    out = _run(env=env)
    assert out.returncode == 1
    assert "KoineError AUTH_INVALID" in out.stderr
    assert "Traceback" not in out.stderr
    assert "not-the-key-0123" not in out.stdout + out.stderr
