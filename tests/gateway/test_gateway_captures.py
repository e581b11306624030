"""Replay every capture of the real gateway (shared/samples) against the local gateway.

Each ``### POST /path {json}`` line of a capture is sent again (with the capture's gateway
environment) and the answer is compared with the captured one: status, content type, JSON shape
and values, event names, order and data. Ids are compared up to renaming (the same captured id
must map to the same local id, different ids to different ones), usage only as consistent ints,
and the ``partial-object`` runs of captures without ``[[chunks=N]]`` only by their invariants
(the real CLI's default chunking is not reproducible).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from _captures import CAPTURES
from _gateway_http import parse_sse

from koine_sdk.testing import LocalGateway, settings_from_env

SAMPLES = CAPTURES

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
IGNORED_HEADERS = {
    "x-powered-by",
    "etag",
    "date",
    "content-length",
    "keep-alive",
    "connection",
    "transfer-encoding",
}


# -- reading captures ------------------------------------------------------------------------


@dataclass
class Exchange:
    label: str  # "", "A", "B"
    method: str
    path: str
    raw_body: bytes | None
    note: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict[str, str])
    body: bytes = b""


@dataclass
class Capture:
    name: str
    env: dict[str, str]
    exchanges: list[Exchange]


_HEADER_RE = re.compile(
    r"^(?:(?P<label>[AB]): )?(?P<method>GET|POST) (?P<path>/\S*) ?(?P<rest>.*)$"
)


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return bytes(out)


def _request_body(rest: str) -> tuple[bytes | None, str]:
    rest = rest.strip()
    if not rest:
        return None, ""
    note = ""
    if match := re.search(r"\s{2}\((.*)\)$", rest):
        note, rest = match.group(1), rest[: match.start()].strip()
    if match := re.fullmatch(r'\{"prompt":"x+\.\.\. \((\d+) chars\)"\}', rest):
        return json.dumps({"prompt": "x" * int(match.group(1))}).encode(), note
    return rest.encode(), note


def read_capture(path: Path) -> Capture:
    data = path.read_bytes()
    env: dict[str, str] = {}
    exchanges: list[Exchange] = []
    parts = re.split(rb"(?m)^### ", data)
    for part in parts[1:]:
        line, _, rest = part.partition(b"\n")
        header = line.decode().rstrip("\r")
        if header.startswith("gateway env:"):
            for item in header.removeprefix("gateway env:").split():
                key, _, value = item.partition("=")
                env[key] = value
            continue
        match = _HEADER_RE.match(header)
        if match is None:
            continue
        raw_body, note = _request_body(match.group("rest"))
        if match.group("method") == "GET" and raw_body is not None:
            note, raw_body = raw_body.decode(), None
        exchange = Exchange(
            match.group("label") or "", match.group("method"), match.group("path"), raw_body, note
        )
        if rest.startswith(b"HTTP/1.1"):
            head, _, body = rest.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode().split("\r\n")
            exchange.status = int(status_line.split()[1])
            for h in header_lines:
                key, _, value = h.partition(":")
                exchange.headers[key.strip().lower()] = value.strip()
            if re.match(rb"^[0-9a-f]+\r\n", body):
                body = _dechunk(body)
            exchange.body = body
        else:
            exchange.body = rest
        exchanges.append(exchange)
    return Capture(path.stem, env, exchanges)


def capture_files() -> list[Path]:
    if not SAMPLES.is_dir():
        return []
    return sorted(p for p in SAMPLES.glob("*.txt") if read_capture(p).exchanges)


# -- comparing -------------------------------------------------------------------------------


class Matcher:
    """Structural equality with captured ids renamed consistently to local ids."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def local_id(self, captured: str) -> str | None:
        return self.ids.get(captured)

    def compare(self, expected: Any, actual: Any, where: str = "$") -> None:
        if isinstance(expected, str) and UUID_RE.match(expected):
            assert isinstance(actual, str) and UUID_RE.match(actual), f"{where}: {actual!r}"
            if expected in self.ids:
                assert self.ids[expected] == actual, f"{where}: id {actual} should be reused"
            else:
                assert actual not in self.ids.values(), f"{where}: id {actual} reused"
                self.ids[expected] = actual
            return
        if isinstance(expected, dict) and set(expected) == {
            "inputTokens",
            "outputTokens",
            "totalTokens",
        }:
            assert isinstance(actual, dict) and set(actual) == set(expected), where
            assert all(type(v) is int and v >= 0 for v in actual.values()), f"{where}: {actual}"
            assert actual["totalTokens"] == actual["inputTokens"] + actual["outputTokens"]
            return
        if isinstance(expected, dict):
            assert isinstance(actual, dict), f"{where}: {actual!r}"
            assert list(actual) == list(expected), f"{where}: keys {list(actual)}"
            for key, value in expected.items():
                if key == "timestamp":
                    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", actual[key])
                else:
                    self.compare(value, actual[key], f"{where}.{key}")
            return
        if isinstance(expected, list):
            assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual}"
            for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
                self.compare(e, a, f"{where}[{i}]")
            return
        assert type(actual) is type(expected) and actual == expected, (
            f"{where}: expected {expected!r}, got {actual!r}"
        )


def collapse_partials(events: list[tuple[str, Any]]) -> list[str]:
    names: list[str] = []
    for name, _ in events:
        if not (name == "partial-object" and names and names[-1] == name):
            names.append(name)
    return names


def check_partials(events: list[tuple[str, Any]]) -> None:
    partials = [data for name, data in events if name == "partial-object"]
    texts = [p["partial"] for p in partials]
    for data in partials:
        assert list(data) == ["partial", "parsed"]
    for before, after in itertools.pairwise(texts):
        assert after.startswith(before) and after != before
    parsed = [json.dumps(p["parsed"], sort_keys=True) for p in partials]
    assert len(set(parsed)) == len(parsed), "partial-object sent without a change of parsed"
    final = [data["object"] for name, data in events if name == "object"]
    if final and partials:
        assert final[0] == partials[-1]["parsed"]


def compare_exchange(matcher: Matcher, exchange: Exchange, response: httpx.Response) -> None:
    assert response.status_code == exchange.status, response.text
    for key, value in exchange.headers.items():
        if key not in IGNORED_HEADERS:
            assert response.headers.get(key) == value, f"header {key}"
    if exchange.headers.get("transfer-encoding") == "chunked":
        assert response.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.headers
    if exchange.headers.get("content-type") == "text/event-stream":
        assert response.headers["connection"] == "keep-alive"
        expected = parse_sse(exchange.body.decode())
        actual = parse_sse(response.text)
        prompt = json.loads(exchange.raw_body or b"{}").get("prompt", "")
        if "partial-object" in {n for n, _ in expected} and "[[chunks=" not in prompt:
            assert collapse_partials(actual) == collapse_partials(expected)
            check_partials(actual)
            expected = [e for e in expected if e[0] != "partial-object"]
            actual = [e for e in actual if e[0] != "partial-object"]
        assert [n for n, _ in actual] == [n for n, _ in expected], response.text
        for (name, want), (_, got) in zip(expected, actual, strict=True):
            matcher.compare(want, got, f"event {name}")
    else:
        matcher.compare(json.loads(exchange.body), response.json())


def _auth_headers(capture: str, gateway: LocalGateway) -> dict[str, str]:
    if "missing-auth" in capture:
        return {}
    if "wrong-key" in capture:
        return {"Authorization": "Bearer not-the-key"}
    return gateway.headers


@pytest.fixture
def gateway_for(koine_gateway: LocalGateway) -> Callable[[Capture], LocalGateway]:
    """The shared gateway, configured with the capture's gateway environment."""

    def configure(capture: Capture) -> LocalGateway:
        koine_gateway.configure(**settings_from_env(capture.env))
        return koine_gateway

    return configure


def _send(
    client: httpx.Client, gateway: LocalGateway, matcher: Matcher, ex: Exchange, capture: str
) -> httpx.Response:
    headers = _auth_headers(capture, gateway)
    content = ex.raw_body
    if content is not None:
        try:
            body = json.loads(content)
        except ValueError:
            pass
        else:
            sent_id = body.get("sessionId") if isinstance(body, dict) else None
            if isinstance(sent_id, str):
                local = matcher.local_id(sent_id)
                if local is None:  # a conversation from outside this capture
                    gateway.seed_session(sent_id)
                    matcher.ids[sent_id] = sent_id
                else:
                    body["sessionId"] = local
                content = json.dumps(body).encode()
        headers = {**headers, "Content-Type": "application/json"}
    return client.request(ex.method, gateway.base_url + ex.path, content=content, headers=headers)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as shared:
        yield shared


@pytest.mark.parametrize("path", capture_files(), ids=lambda p: p.stem)
def test_capture_replays(
    path: Path, gateway_for: Callable[[Capture], LocalGateway], client: httpx.Client
) -> None:
    capture = read_capture(path)
    gateway = gateway_for(capture)
    matcher = Matcher()
    if any(e.label for e in capture.exchanges):
        _replay_concurrent(client, gateway, matcher, capture)
        return
    for exchange in capture.exchanges:
        response = _send(client, gateway, matcher, exchange, capture.name)
        if exchange.status is None:  # body only: the capture shows the JSON alone
            exchange.status = 200
            exchange.headers = {"content-type": "application/json; charset=utf-8"}
        compare_exchange(matcher, exchange, response)


def _replay_concurrent(
    client: httpx.Client, gateway: LocalGateway, matcher: Matcher, capture: Capture
) -> None:
    """A slow request A, then B (and GET /health) while A is still running."""
    first = next(e for e in capture.exchanges if e.label == "A")
    second = next(e for e in capture.exchanges if e.label == "B")
    health = next((e for e in capture.exchanges if e.path == "/health"), None)
    lag = float(re.search(r"B is sent ([\d.]+) s after A", first.note).group(1))  # type: ignore[union-attr]
    results: dict[str, httpx.Response] = {}

    def run_first() -> None:
        with httpx.Client(timeout=10) as other:
            results["A"] = _send(other, gateway, matcher, first, capture.name)

    thread = threading.Thread(target=run_first)
    started = time.monotonic()
    thread.start()
    time.sleep(lag)
    results["B"] = _send(client, gateway, matcher, second, capture.name)
    if health is not None:
        got = client.get(gateway.base_url + "/health")
        assert got.status_code == 200
        Matcher().compare(json.loads(health.body), got.json())
    assert time.monotonic() - started < lag + 1.0, "A should still be running"
    thread.join(10)
    compare_exchange(matcher, second, results["B"])
    compare_exchange(matcher, first, results["A"])


def test_all_captures_are_replayed() -> None:
    """Guard against the parser silently skipping captures."""
    names = {p.stem for p in capture_files()}
    assert len(names) >= 30
    assert {"stream-object", "session-multiturn", "error-429-concurrency-stream"} <= names
