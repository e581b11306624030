"""The local gateway checks the key and the announced length before it reads a body, refuses a
body past its cap while it streams in, keeps nothing of a refused body, applies prompt
directives only after auth, and takes its key without putting it on a command line."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from koine_sdk.testing import LocalGateway

MiB = 1024 * 1024


@pytest.fixture
def gw() -> Iterator[LocalGateway]:
    with LocalGateway() as gateway:
        yield gateway


def _status_of(sock: socket.socket, timeout: float = 5.0) -> int:
    sock.settimeout(timeout)
    head = b""
    while b"\r\n" not in head:
        piece = sock.recv(4096)
        if not piece:
            break
        head += piece
    return int(head.split(b" ", 2)[1])


def _request_head(gw: LocalGateway, *, key: str | None, length: int | None) -> bytes:
    lines = [
        "POST /generate-text HTTP/1.1",
        f"Host: 127.0.0.1:{gw.port}",
        "Content-Type: application/json",
    ]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("key", [None, "wrong"])
def test_an_unauthenticated_body_is_never_read(gw: LocalGateway, key: str | None) -> None:
    """96 MiB announced, not one byte sent: the answer comes at once (the server did not wait
    for the body), and nothing of it is kept."""
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(_request_head(gw, key=key, length=96 * MiB))
        assert _status_of(sock) == (401 if key is None else 403)
    assert gw.requests[-1].body == b""


def test_an_announced_body_over_the_cap_is_refused_before_it_is_sent(gw: LocalGateway) -> None:
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(_request_head(gw, key=gw.auth_key, length=11 * MiB))
        assert _status_of(sock) == 413


def test_a_chunked_body_over_the_cap_is_refused_while_it_streams(gw: LocalGateway) -> None:
    """A chunked body with no length: 413 once it passes 10 MiB, long before 96 MiB were sent."""
    sent = 0
    status = None
    block = b"x" * MiB
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        sock.sendall(_request_head(gw, key=gw.auth_key, length=None))
        try:
            while sent < 96 * MiB:
                sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                sent += len(block)
                ready, _, _ = select.select([sock], [], [], 0)
                if ready:
                    status = _status_of(sock)
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        if status is None:
            status = _status_of(sock)
    assert status == 413
    assert sent < 40 * MiB, sent
    assert gw.requests[-1].body == b""


def test_directives_apply_only_after_auth(gw: LocalGateway) -> None:
    import httpx

    body = {"prompt": "[[status=418]] hello"}
    wrong = httpx.post(
        gw.base_url + "/generate-text", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 403
    right = httpx.post(gw.base_url + "/generate-text", json=body, headers=gw.headers)
    assert right.status_code == 418


def test_the_request_log_is_bounded() -> None:
    from koine_sdk.testing._state import MAX_RECORDED, GatewayState, RecordedRequest

    state = GatewayState.__new__(GatewayState)
    import threading

    state.lock = threading.Condition()
    state.requests = []
    for i in range(MAX_RECORDED + 50):
        state.record(RecordedRequest("GET", f"/{i}", {}, b"", None))
    assert len(state.requests) == MAX_RECORDED
    assert state.requests[-1].path == f"/{MAX_RECORDED + 49}"


def _start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "koine_sdk.testing", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_key_comes_from_a_file_not_the_command_line(tmp_path: Path) -> None:
    import httpx

    key_file = tmp_path / "key"
    key_file.write_text("file-key-123\n")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_CODE_GATEWAY_API_KEY"}
    proc = _start_cli(["--port", str(port), "--auth-key-file", str(key_file)], env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening" in line, line + (proc.stderr.read() if proc.stderr else "")
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"file-key-123" not in cmdline
        ok = httpx.post(
            f"http://127.0.0.1:{port}/generate-text",
            json={"prompt": "hi"},
            headers={"Authorization": "Bearer file-key-123"},
        )
        assert ok.status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_busy_port_is_named_in_one_line() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = _start_cli(["--port", str(port)], dict(os.environ))
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"port {port} is in use" in lines[0], err
    time.sleep(0)


def test_without_the_testing_extra_koine_gateway_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from koine_sdk.testing._cli import main\n"
        "raise SystemExit(main([]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'koine-sdk[testing]'" in lines[0], proc.stderr
    help_ = subprocess.run(
        [sys.executable, "-c", code.replace("main([])", "main(['--help'])")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_.returncode == 0 and "--auth-key-file" in help_.stdout
