"""The ``koine-gateway`` command, ``python -m koine_sdk.testing``, env settings, the pytest plugin
and import hygiene."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from koine_sdk.testing import LocalGateway, settings_from_env

ROOT = Path(__file__).resolve().parents[2]
pytest_plugins = ("pytester",)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Running:
    def __init__(self, proc: subprocess.Popen[str], lines: list[str], url: str) -> None:
        self.proc, self.lines, self.url = proc, lines, url


@pytest.fixture
def run_cli() -> Iterator[Callable[..., Running]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Running:
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        environment.pop("CLAUDE_CODE_GATEWAY_API_KEY", None) if env is None else None
        proc = subprocess.Popen(
            [sys.executable, "-m", "koine_sdk.testing", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        procs.append(proc)
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                url = next(w for w in " ".join(lines).split() if w.startswith("http://"))
                return Running(proc, lines, url)
        raise AssertionError(
            f"no start banner: {lines} {proc.stderr.read() if proc.stderr else ''}"
        )

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serves_until_sigint(run_cli: Callable[..., Running]) -> None:
    port = free_port()
    running = run_cli("--port", str(port), "--max-streaming", "2", "--chunk-delay", "0")
    assert running.url == f"http://127.0.0.1:{port}"
    key_lines = [line for line in running.lines if line.startswith("Generated auth key: ")]
    assert len(key_lines) == 1
    key = key_lines[0].removeprefix("Generated auth key: ")
    health = httpx.get(running.url + "/health").json()
    assert health["concurrency"]["streaming"]["limit"] == 2
    response = httpx.post(
        running.url + "/generate-text",
        json={"prompt": "hi"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.json()["text"] == "Echo: hi"
    running.proc.send_signal(signal.SIGINT)
    assert running.proc.wait(timeout=10) == 0
    out = running.proc.stdout.read() if running.proc.stdout else ""
    assert key not in out  # the key is printed once, at start
    assert "Traceback" not in (running.proc.stderr.read() if running.proc.stderr else "")


def test_cli_reads_the_gateway_environment(run_cli: Callable[..., Running]) -> None:
    port = free_port()
    running = run_cli(
        env={
            "CLAUDE_CODE_GATEWAY_API_KEY": "env-key",
            "GATEWAY_PORT": str(port),
            "KOINE_MAX_NONSTREAMING_CONCURRENT": "9",
            "KOINE_DISALLOWED_TOOLS": '["Bash"]',
        }
    )
    assert running.url.endswith(f":{port}")
    assert not any("env-key" in line for line in running.lines)
    assert httpx.get(running.url + "/health").json()["concurrency"]["nonStreaming"]["limit"] == 9
    response = httpx.post(
        running.url + "/generate-text",
        json={"prompt": "hi", "allowedTools": ["Bash"]},
        headers={"Authorization": "Bearer env-key"},
    )
    assert response.json()["code"] == "NO_TOOLS_AVAILABLE"
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(timeout=10) == 0


def test_cli_rejects_a_bad_environment() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "koine_sdk.testing", "--port", "0"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "KOINE_ALLOWED_TOOLS": "Read,Glob"},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "KOINE_ALLOWED_TOOLS must be a JSON array" in result.stderr


def test_settings_from_env() -> None:
    assert settings_from_env({}) == {}
    assert settings_from_env({"PORT": "4000", "KOINE_ALLOWED_TOOLS": '["Read"]'}) == {
        "port": 4000,
        "allowed_tools": ("Read",),
    }
    assert settings_from_env({"GATEWAY_PORT": "1", "PORT": "2"})["port"] == 1
    with pytest.raises(ValueError, match="KOINE_MAX_STREAMING_CONCURRENT"):
        settings_from_env({"KOINE_MAX_STREAMING_CONCURRENT": "many"})


def test_from_env_defaults_to_port_3100() -> None:
    gateway = LocalGateway.from_env({"KOINE_MAX_STREAMING_CONCURRENT": "4"}, auth_key="k")
    assert gateway.settings.max_streaming == 4 and gateway.auth_key == "k"
    assert gateway._requested_port == 3100  # pyright: ignore[reportPrivateUsage]


def test_import_does_not_pull_jupyter() -> None:
    code = (
        "import sys, koine_sdk.testing\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('IPython', 'ipywidgets', 'ipykernel', 'koine_jupyter', 'pandas')]\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_plugin_loads_without_the_server_stack() -> None:
    """The plugin is registered for every pytest run where koine-sdk is installed: it must not
    need starlette/uvicorn/jiter (the ``testing`` extra) until a fixture is used."""
    code = (
        "import sys, koine_sdk.testing._pytest_plugin\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'jiter')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    assert out.strip() == "[]"


# -- the pytest plugin -----------------------------------------------------------------------


def test_fixture_is_reset_between_tests_part_1(koine_gateway: LocalGateway) -> None:
    koine_gateway.configure(max_streaming=1)
    koine_gateway.script_text("left behind")
    httpx.get(koine_gateway.base_url + "/health")


def test_fixture_is_reset_between_tests_part_2(koine_gateway: LocalGateway) -> None:
    assert koine_gateway.settings.max_streaming == 3
    assert koine_gateway.requests == []
    response = httpx.post(
        koine_gateway.base_url + "/generate-text",
        json={"prompt": "x"},
        headers=koine_gateway.headers,
    )
    assert response.json()["text"] == "Echo: x"


def test_factory_stops_what_it_started(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import httpx

        urls = []

        def test_make(koine_gateway_factory):
            gw = koine_gateway_factory(max_nonstreaming=1)
            urls.append(gw.base_url)
            health = httpx.get(gw.base_url + "/health").json()
            assert health["concurrency"]["nonStreaming"]["limit"] == 1

        def test_stopped_after():
            import pytest
            with pytest.raises(httpx.ConnectError):
                httpx.get(urls[0] + "/health", timeout=1)
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
