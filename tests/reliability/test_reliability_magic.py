"""Reliability through ``%%koine``: a representative subset of the fault matrix in a real
IPython shell. Each failure must render as a short message with the error code, no traceback
page, within the timeout, and the auth key must appear nowhere in what the notebook shows."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output
from pydantic import BaseModel

from koine_sdk.testing import Fault


class Town(BaseModel):
    name: str
    population: int


@pytest.fixture
def ip(koine_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("KOINE_BASE_URL", koine_gateway.base_url)
    monkeypatch.setenv("KOINE_AUTH_KEY", koine_gateway.auth_key)
    monkeypatch.delenv("KOINE_DISPLAY", raising=False)
    monkeypatch.delenv("KOINE_TIMEOUT", raising=False)
    start_ipython()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "koine_jupyter")
    shell.user_ns["Town"] = Town
    yield shell
    shell.run_line_magic("unload_ext", "koine_jupyter")
    shell.config.pop("KoineMagics", None)
    for name in ("answer", "Town"):
        shell.user_ns.pop(name, None)


MAGIC_CASES: list[tuple[str, str, tuple[Fault, ...], str]] = [
    ("drop-mid-stream", "%%koine\none two three four", (Fault.drop(after=2),), "STREAM_INCOMPLETE"),
    ("error-after-text", "%%koine\none two three", (Fault.cli_error(after=2),), "CLI_EXIT_ERROR"),
    ("malformed-json", "%%koine\none two", (Fault.malformed_line(after=1),), "SSE_PARSE_ERROR"),
    ("502-html", "%%koine\nhello", (Fault.http_error(502, "html"),), "HTTP_ERROR"),
    ("500-empty", "%%koine\nhello", (Fault.http_error(500, "empty"),), "HTTP_ERROR"),
    ("401", "%%koine\nhello", (Fault.unauthorized(),), "AUTH_MISSING"),
    ("403", "%%koine\nhello", (Fault.forbidden(),), "AUTH_INVALID"),
    ("429", "%%koine\nhello", (Fault.rate_limited(retry_after=None),), "CONCURRENCY_LIMIT_ERROR"),
    ("first-byte-after-timeout", "%%koine --timeout 0.5\nhello", (Fault.slow_first_byte(4),),
     "REQUEST_TIMEOUT"),
    ("close-before-headers", "%%koine\nhello", (Fault.close_before_headers(),), "NETWORK_ERROR"),
    ("invalid-object", "%%koine --schema Town\na town", (Fault.invalid_object(),),
     "VALIDATION_ERROR"),
    ("object-missing", "%%koine --schema Town\na town", (Fault.no_object(),), "NO_OBJECT"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cell", "faults", "code"), [c[1:] for c in MAGIC_CASES], ids=[c[0] for c in MAGIC_CASES]
)
def test_magic_renders_faults_briefly(
    ip: InteractiveShell,
    koine_gateway: Any,
    capsys: pytest.CaptureFixture[str],
    cell: str,
    faults: tuple[Fault, ...],
    code: str,
) -> None:
    koine_gateway.enqueue(*faults)
    began = time.monotonic()
    result = ip.run_cell(cell)
    elapsed = time.monotonic() - began
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert elapsed < 2.5 if "--timeout 0.5" in cell else elapsed < 4.0, elapsed
    assert not result.success
    assert getattr(result.error_in_exec, "code", None) == code, repr(result.error_in_exec)
    assert f"[{code}]" in text, text
    assert "Traceback" not in text and "File " not in text, text
    assert koine_gateway.auth_key not in text
    # the kernel's client still works afterwards (the connection was closed or pooled)
    again = ip.run_cell("%%koine --quiet --out answer\nagain")
    assert again.success, again.error_in_exec
    assert ip.user_ns["answer"].text == "Echo: again"
    assert koine_gateway.wait_idle(3.0)


@pytest.mark.parametrize("display", ["markdown", "text"])
def test_magic_outputs_never_show_the_key(
    ip: InteractiveShell, koine_gateway: Any, display: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = koine_gateway.auth_key
    ip.run_line_magic("config", f"KoineMagics.display = {display!r}")
    koine_gateway.enqueue(Fault.http_error(502, "html"), Fault.drop(after=1))
    with capture_output() as cap:
        ip.run_cell("%%koine\nfirst")
        ip.run_cell("%%koine\nsecond one two")
        ip.run_cell("%%koine --out answer\nthird")
        ip.run_line_magic("koine", "status")
        ip.run_line_magic("tb", "")
    shown = cap.stdout + cap.stderr + repr([o.data for o in cap.outputs])
    shown += capsys.readouterr().out
    assert "HTTP_ERROR" in shown and "STREAM_INCOMPLETE" in shown
    assert key not in shown
    assert key not in repr(ip.user_ns["answer"]) + str(ip.user_ns["answer"])


def test_magic_connection_refused_is_brief(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ip.run_line_magic("config", f"KoineMagics.base_url = 'http://127.0.0.1:{port}'")
    began = time.monotonic()
    result = ip.run_cell("%%koine\nhello")
    assert time.monotonic() - began < 4.0
    text = capsys.readouterr()
    shown = text.out + text.err
    assert result.error_in_exec.code == "NETWORK_ERROR"  # type: ignore[union-attr]
    assert "[NETWORK_ERROR]" in shown and "Traceback" not in shown
