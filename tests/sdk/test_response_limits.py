"""No response can exhaust memory: a hostile or broken gateway gets a typed error, and the
client's memory stays bounded by its limits, not by what is sent.

The client runs in a subprocess that reports its peak RSS (VmHWM) before and after each call; the
hostile server runs here, on 127.0.0.1, port 0.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koine_sdk import KoineConfig, KoineError, ResponseLimits, create_koine_sync
from koine_sdk._sse import SSEDecoder

MiB = 1024 * 1024
FLOOD = 256 * MiB
DEEP = 200_000


def _deep(n: int = DEEP) -> str:
    return "[" * n + "]" * n


class _Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _start(self, ctype: str, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _flood(self, prefix: bytes) -> None:
        """``prefix``, then FLOOD bytes of ``a`` with no line break, chunked, until the client
        hangs up."""
        block = b"a" * MiB
        try:
            self._chunk(prefix)
            for _ in range(FLOOD // MiB):
                self._chunk(block)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        mode = json.loads(self.rfile.read(length))["prompt"]  # the test's prompt names the mode
        path = self.path
        streaming = path in ("/stream", "/stream-object")
        if mode == "flood":
            if streaming:
                self._start("text/event-stream")
                self._flood(b"data: ")
            else:
                self._start("application/json")
                self._flood(b'{"text": "')
            return
        if mode == "announced":  # a Content-Length far over the limit, then nothing
            self._start("application/json", FLOOD)
            return
        # mode == "deep": nesting far past what a recursive parser survives
        usage = '"usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},"sessionId":"s"'
        if path == "/generate-text":
            body = f'{{"text":{_deep()},{usage}}}'.encode()
        elif path == "/generate-object":
            body = f'{{"object":{_deep()},"rawText":"x",{usage}}}'.encode()
        elif path == "/stream":
            body = f'event: text\ndata: {{"text":{_deep()}}}\n\n'.encode()
        else:
            body = (
                f'event: partial-object\ndata: {{"partial":"x","parsed":{_deep()}}}\n\n'
                f'event: object\ndata: {{"object":{_deep()}}}\n\n'
            ).encode()
        ctype = "text/event-stream" if streaming else "application/json"
        self._start(ctype, len(body))
        self.wfile.write(body)


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


_CLIENT = r"""
import json, sys
from pydantic import BaseModel
from koine_sdk import create_koine_sync, KoineError

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

class Thing(BaseModel):
    x: list[object] = []

url, mode, call = sys.argv[1:4]
koine = create_koine_sync(base_url=url, auth_key="k", timeout=60)
before = peak()
try:
    if call == "generate_text":
        koine.generate_text(prompt=mode)
    elif call == "generate_object":
        koine.generate_object(prompt=mode, schema=Thing)
    elif call == "stream_text":
        with koine.stream_text(prompt=mode) as s:
            s.text()
    else:
        with koine.stream_object(prompt=mode, schema=Thing) as s:
            for _ in s.partial_object_stream:
                pass
            s.object()
    outcome = "no error"
except KoineError as exc:
    outcome = exc.code
except BaseException as exc:
    outcome = type(exc).__name__
print(json.dumps({"outcome": outcome, "growth": peak() - before}))
"""


def _run_client(url: str, mode: str, call: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _CLIENT, url, mode, call],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("call", ["generate_text", "stream_text"])
def test_a_flood_without_end_is_refused_with_bounded_memory(hostile: str, call: str) -> None:
    result = _run_client(hostile, "flood", call)
    print(f"{call}: 256 MiB flood -> {result}")
    assert result["outcome"] == "RESPONSE_TOO_LARGE"
    assert result["growth"] < 96 * MiB, result  # the limit is 16 MiB; 256 MiB were sent


def test_an_announced_huge_body_is_refused_before_reading(hostile: str) -> None:
    result = _run_client(hostile, "announced", "generate_text")
    assert result["outcome"] == "RESPONSE_TOO_LARGE"


@pytest.mark.parametrize(
    "call", ["generate_text", "generate_object", "stream_text", "stream_object"]
)
def test_deeply_nested_json_is_a_typed_error_not_a_recursion_error(hostile: str, call: str) -> None:
    result = _run_client(hostile, "deep", call)
    expected = "INVALID_RESPONSE" if call.startswith("generate") else "SSE_PARSE_ERROR"
    assert result["outcome"] == expected, result  # max_depth: the same whatever the stack


def test_limits_are_checked_and_shown() -> None:
    with pytest.raises(KoineError) as info:
        create_koine_sync(
            KoineConfig("http://127.0.0.1:1", "k", limits=ResponseLimits(max_body_bytes=0))
        )
    assert info.value.code == "INVALID_CONFIG" and "max_body_bytes" in info.value.message
    small = ResponseLimits(max_line_chars=10)
    assert "max_line_chars=10" in repr(KoineConfig("http://h", "k", limits=small))


def _events(decoder: SSEDecoder, chunks: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.close())
    return out


_line = st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=40)
_event = st.lists(_line, min_size=1, max_size=4).map(
    lambda lines: "".join(f"data: {x}\n" for x in lines) + "\n"
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_event, max_size=8), st.data())
def test_limits_keep_split_invariance_under_the_limit(events: list[str], data: Any) -> None:
    body = "".join(events).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    whole = _events(SSEDecoder(), [body])
    limited = _events(SSEDecoder(max_line=1000, max_event=1000), chunks)
    assert limited == whole


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 64), st.integers(1, 20), st.data())
def test_a_line_over_the_limit_fails_however_it_is_cut(limit: int, extra: int, data: Any) -> None:
    body = ("data: " + "x" * (limit + extra) + "\n\n").encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    with pytest.raises(KoineError) as info:
        _events(SSEDecoder(max_line=limit + 6, max_event=10**9), chunks)
    assert info.value.code == "RESPONSE_TOO_LARGE"


def test_reprs_mask_url_credentials_and_never_raise() -> None:
    from koine_sdk import KoineClient, SyncKoineClient

    config = KoineConfig("http://user:s3cret@gateway.example:3100/p", "the-key")
    shown = repr(config)
    assert "s3cret" not in shown and "user" not in shown and "the-key" not in shown
    assert "***@gateway.example:3100" in shown
    for cls in (KoineClient, SyncKoineClient):
        half = cls.__new__(cls)  # as a verbose traceback of a failed __init__ sees it
        assert cls.__name__ in repr(half)
        with pytest.raises(KoineError) as info:
            cls(config)  # credentials in the URL: INVALID_CONFIG
        assert info.value.code == "INVALID_CONFIG"
        assert "s3cret" not in repr(info.value) and "s3cret" not in str(info.value)
