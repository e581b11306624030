"""``%koine fix [N]`` and ``{Err}``/``{Err[n]}`` in a real kernel, asserted on the prompt the
local gateway received: the failed cell's source and traceback, no ANSI codes, no key, bounded;
with nothing to fix, a message and no request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _kernels import Kernel, koine_kernel, of_type

from koine_sdk.testing import LocalGateway


@pytest.fixture(scope="module")
def kernel(koine_gateway_server: Any) -> Iterator[Kernel]:
    with koine_kernel(koine_gateway_server) as k:
        yield k


def _prompts(gw: LocalGateway) -> list[str]:
    return [str(r.json["prompt"]) for r in gw.requests if isinstance(r.json, dict)]


def _stdout(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in of_type(msgs, "stream"))


def test_fix_and_err_references(kernel: Kernel, koine_gateway: LocalGateway) -> None:
    key = koine_gateway.auth_key
    msgs, reply = kernel.run("%koine fix")
    assert reply["content"]["status"] == "ok"
    assert "nothing to fix" in _stdout(msgs)
    assert koine_gateway.requests == []

    cell = (
        f'note = "{key}"\n'
        'raise ValueError("\\x1b[31mred alert\\x1b[0m " + note + " " + "x" * 50_000)'
    )
    _, failed = kernel.run(cell)
    assert failed["content"]["status"] == "error"
    count = failed["content"]["execution_count"]

    _, ok = kernel.run("1 + 1")  # a cell that works does not replace the failure
    assert ok["content"]["status"] == "ok"

    for line in ("%koine fix", f"%koine fix {count}"):
        koine_gateway.reset()
        msgs, reply = kernel.run(line)
        assert reply["content"]["status"] == "ok", reply["content"]
        [prompt] = _prompts(koine_gateway)
        assert "raise ValueError(" in prompt  # the cell's source
        assert "Traceback (most recent call last)" in prompt
        assert "ValueError: red alert" in prompt  # the traceback, colour codes stripped
        assert "\x1b" not in prompt
        assert key not in prompt
        assert "***" in prompt
        assert len(prompt) < 15_000
        assert of_type(msgs, "execute_result") or of_type(msgs, "display_data")

    koine_gateway.reset()
    msgs, reply = kernel.run(f"%koine fix {count + 100}")
    assert reply["content"]["status"] == "ok"
    assert "did not fail" in _stdout(msgs)
    assert koine_gateway.requests == []

    koine_gateway.reset()
    _, reply = kernel.run(f"%koine --quiet What went wrong? {{Err[{count}]}} and {{Err}}")
    assert reply["content"]["status"] == "ok", reply["content"]
    [prompt] = _prompts(koine_gateway)
    assert prompt.count("ValueError: red alert") == 2
    assert key not in prompt
    assert "\x1b" not in prompt
