"""The local gateway over real HTTP: lifecycle, auth, validation, concurrency, sessions, framing,
scripting, recording and speed. Faults are in test_gateway_faults.py, the CLI and the pytest plugin
in test_gateway_cli.py, the model alone in test_gateway_model.py, the captures in
test_gateway_captures.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _gateway_http import SCHEMA, parse_sse, post

from koine_sdk.testing import LocalGateway


def stream(http: httpx.Client, gw: LocalGateway, body: Any, path: str = "/stream") -> list[Any]:
    response = post(http, gw, path, body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream"
    return parse_sse(response.text)


def text_of(events: list[tuple[str, Any]]) -> str:
    return "".join(data["text"] for name, data in events if name == "text")


def raw_request(gw: LocalGateway, path: str, body: bytes) -> tuple[bytes, list[bytes]]:
    """Send one request on a plain socket; return the response head and its HTTP chunks."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {gw.auth_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        data = bytearray()
        while not data.endswith(b"\r\n0\r\n\r\n"):  # the last chunk of a kept-alive response
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed before the end of the body"
            data += chunk
    end = data.index(b"\r\n\r\n")
    head, pos = bytes(data[:end]), end + 4
    chunks: list[bytes] = []
    while True:
        line_end = data.index(b"\r\n", pos)
        size = int(data[pos:line_end], 16)
        if size == 0:
            break
        start = line_end + 2
        chunks.append(bytes(data[start : start + size]))
        assert data[start + size : start + size + 2] == b"\r\n"
        pos = start + size + 2
    return head, chunks


# -- lifecycle -------------------------------------------------------------------------------


def test_starts_fast_on_a_free_port_and_stops() -> None:
    began = time.perf_counter()
    with LocalGateway() as gateway:
        elapsed = time.perf_counter() - began
        assert elapsed < 1.0
        assert gateway.startup_seconds is not None and gateway.startup_seconds < 1.0
        assert gateway.base_url == f"http://127.0.0.1:{gateway.port}"
        assert gateway.port > 0 and len(gateway.auth_key) > 20
        assert httpx.get(gateway.base_url + "/health").status_code == 200
    assert not gateway.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(gateway.base_url + "/health", timeout=2)


def test_two_gateways_have_different_ports_and_keys(
    koine_gateway_factory: Callable[..., LocalGateway], gw: LocalGateway
) -> None:
    other = koine_gateway_factory(max_streaming=1, auth_key="fixed-key")
    assert other.port != gw.port
    assert other.auth_key == "fixed-key" and gw.auth_key != "fixed-key"
    health = httpx.get(other.base_url + "/health").json()
    assert health["concurrency"]["streaming"]["limit"] == 1


async def test_works_from_async_tests(gw: LocalGateway) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url, headers=gw.headers) as client:
        responses = await asyncio.gather(
            *(client.post("/generate-text", json={"prompt": f"n{i}"}) for i in range(4))
        )
    assert sorted(r.json()["text"] for r in responses) == [f"Echo: n{i}" for i in range(4)]


# -- health, auth, routing -------------------------------------------------------------------


def test_health_needs_no_key_and_reports_limits(http: httpx.Client, gw: LocalGateway) -> None:
    response = http.get(gw.base_url + "/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["status"] == "healthy" and body["claudeCli"] == "available"
    assert body["concurrency"] == {
        "streaming": {"active": 0, "limit": 3},
        "nonStreaming": {"active": 0, "limit": 5},
    }
    gw.configure(healthy=False, max_nonstreaming=7)
    response = http.get(gw.base_url + "/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["concurrency"]["nonStreaming"]["limit"] == 7


def test_health_counts_in_flight_requests(http: httpx.Client, gw: LocalGateway) -> None:
    gw.script_text(["a", "b", "c"], chunk_delay=0.2)
    with http.stream("POST", gw.base_url + "/stream", json={"prompt": "x"}, headers=gw.headers):
        active = http.get(gw.base_url + "/health").json()["concurrency"]
        assert active["streaming"]["active"] == 1
        assert active["nonStreaming"]["active"] == 0
    assert gw.wait_idle(2)
    assert http.get(gw.base_url + "/health").json()["concurrency"]["streaming"]["active"] == 0


@pytest.mark.parametrize(
    "path", ["/generate-text", "/generate-object", "/stream", "/stream-object"]
)
def test_auth_on_every_generation_endpoint(http: httpx.Client, gw: LocalGateway, path: str) -> None:
    missing = http.post(gw.base_url + path, json={"prompt": "hi"})
    assert (missing.status_code, missing.json()) == (401, {"error": "Missing authorization header"})
    wrong = http.post(
        gw.base_url + path, json={"prompt": "hi"}, headers={"Authorization": "Bearer nope"}
    )
    assert (wrong.status_code, wrong.json()) == (403, {"error": "Invalid API key"})
    for scheme in ("Basic", "bearer"):  # only "Bearer " counts as a key at all
        other = http.post(
            gw.base_url + path,
            json={"prompt": "hi"},
            headers={"Authorization": f"{scheme} {gw.auth_key}"},
        )
        assert other.status_code == 401


def test_unknown_paths_and_methods_are_404(http: httpx.Client, gw: LocalGateway) -> None:
    assert post(http, gw, "/nope", {}).json() == {"error": "Not found"}
    response = http.get(gw.base_url + "/generate-text", headers=gw.headers)
    assert (response.status_code, response.json()) == (404, {"error": "Not found"})
    assert http.post(gw.base_url + "/health").status_code == 404  # /health skips auth
    assert http.post(gw.base_url + "/nope").status_code == 401  # auth comes before routing


# -- validation ------------------------------------------------------------------------------


def issues_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "Invalid request body" and body["code"] == "VALIDATION_ERROR"
    return json.loads(body["rawText"])


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        ({"system": "s"}, ["prompt"], ("string", "undefined", "Required")),
        ({"prompt": 42}, ["prompt"], ("string", "number", "Expected string, received number")),
        ({"prompt": "p", "system": None}, ["system"], ("string", "null", None)),
        ({"prompt": "p", "sessionId": 1}, ["sessionId"], ("string", "number", None)),
        ({"prompt": "p", "model": ["a"]}, ["model"], ("string", "array", None)),
        ({"prompt": "p", "allowedTools": "Read"}, ["allowedTools"], ("array", "string", None)),
        (
            {"prompt": "p", "allowedTools": ["Read", 3]},
            ["allowedTools", 1],
            ("string", "number", None),
        ),
        ({"prompt": "p", "maxTokens": "9"}, ["maxTokens"], ("number", "string", None)),
        ({"prompt": "p", "maxTokens": True}, ["maxTokens"], ("number", "boolean", None)),
        ({"prompt": "p", "maxTokens": 2.5}, ["maxTokens"], ("integer", "float", None)),
    ],
)
def test_validation_issues_like_zod(
    http: httpx.Client, gw: LocalGateway, body: Any, path: list[Any], expected: tuple[Any, ...]
) -> None:
    (issue,) = issues_of(post(http, gw, "/generate-text", body))
    assert issue["code"] == "invalid_type"
    assert issue["path"] == path
    assert (issue["expected"], issue["received"]) == expected[:2]
    if expected[2]:
        assert issue["message"] == expected[2]


def test_validation_more_cases(http: httpx.Client, gw: LocalGateway) -> None:
    (issue,) = issues_of(post(http, gw, "/generate-text", {"prompt": "p", "maxTokens": 0}))
    assert issue["code"] == "too_small" and issue["message"] == "Number must be greater than 0"
    assert post(http, gw, "/generate-text", {"prompt": "p", "maxTokens": 100}).status_code == 200
    # maxTokens is not part of the streaming schema: ignored there
    assert post(http, gw, "/stream", {"prompt": "p", "maxTokens": "x"}).status_code == 200
    # several issues at once, in order
    issues = issues_of(post(http, gw, "/generate-text", {"prompt": 1, "model": 2}))
    assert [i["path"] for i in issues] == [["prompt"], ["model"]]
    # a JSON array is parsed, then refused by the schema
    (issue,) = issues_of(post(http, gw, "/stream", ["prompt"]))
    assert (issue["path"], issue["expected"], issue["received"]) == ([], "object", "array")
    # extra fields are ignored (stripped), schema is ignored on the text endpoints
    ok = post(http, gw, "/generate-text", {"prompt": "p", "schema": 5, "extra": True})
    assert ok.status_code == 200


@pytest.mark.parametrize("path", ["/generate-object", "/stream-object"])
def test_schema_validation(http: httpx.Client, gw: LocalGateway, path: str) -> None:
    (missing,) = issues_of(post(http, gw, path, {"prompt": "p"}))
    assert (missing["path"], missing["message"]) == (["schema"], "Required")
    (wrong,) = issues_of(post(http, gw, path, {"prompt": "p", "schema": "object"}))
    assert (wrong["expected"], wrong["received"]) == ("object", "string")
    (listed,) = issues_of(post(http, gw, path, {"prompt": "p", "schema": [{"type": "x"}]}))
    assert listed["received"] == "array"
    (custom,) = issues_of(post(http, gw, path, {"prompt": "p", "schema": {"title": "T"}}))
    assert custom["code"] == "custom" and custom["path"] == ["schema"]
    assert (
        post(
            http,
            gw,
            path,
            {"prompt": "p", "schema": {"$ref": "#/$defs/A", "$defs": {"A": {"type": "string"}}}},
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "content",
    [b"{bad json", b"42", b'"text"', b'{"prompt": NaN}', b'{"prompt": "a",}'],
)
def test_body_that_is_not_json_is_a_500(
    http: httpx.Client, gw: LocalGateway, content: bytes
) -> None:
    response = http.post(
        gw.base_url + "/generate-text",
        content=content,
        headers={**gw.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error", "code": "INTERNAL_ERROR"}


def test_body_over_10_mb_is_a_413(http: httpx.Client, gw: LocalGateway) -> None:
    # The real gateway parses first and answers 500; ours refuses before buffering (issue 20).
    response = post(http, gw, "/generate-text", {"prompt": "x" * (10 * 1024 * 1024)})
    assert response.status_code == 413
    assert gw.requests[-1].body == b""  # nothing of it was kept


def test_body_without_json_content_type_is_not_read(http: httpx.Client, gw: LocalGateway) -> None:
    response = http.post(
        gw.base_url + "/generate-text",
        content=b'{"prompt": "hi"}',
        headers={**gw.headers, "Content-Type": "text/plain"},
    )
    (issue,) = issues_of(response)
    assert issue["path"] == ["prompt"] and issue["received"] == "undefined"


def test_prompt_too_large_for_one_cli_argument(http: httpx.Client, gw: LocalGateway) -> None:
    ok = post(http, gw, "/generate-text", {"prompt": "x" * 131071})
    assert ok.status_code == 200
    big = {"prompt": "x" * 131072}
    response = post(http, gw, "/generate-text", big)
    assert (response.status_code, response.json()) == (
        500,
        {"error": "spawn E2BIG", "code": "INTERNAL_ERROR"},
    )
    assert (
        post(http, gw, "/generate-text", {"prompt": "p", "system": "é" * 70000}).status_code == 500
    )
    for name, value in (("model", "m" * 131072), ("sessionId", "s" * 131072)):
        response = post(http, gw, "/generate-text", {"prompt": "p", name: value})
        assert response.json()["code"] == "INTERNAL_ERROR", name


def _schema_of_size(size: int, indent: int | None) -> dict[str, Any]:
    """A schema whose JSON.stringify text (compact, or with ``indent``) is ``size`` bytes."""
    base = {"type": "object", "description": ""}
    empty = len(json.dumps(base, indent=indent, separators=None if indent else (",", ":")))
    return {"type": "object", "description": "d" * (size - empty)}


def test_generate_object_schema_argument_limit(http: httpx.Client, gw: LocalGateway) -> None:
    # /generate-object passes JSON.stringify(schema) as one argument (--json-schema).
    fits = _schema_of_size(131071, None)
    assert post(http, gw, "/generate-object", {"prompt": "p", "schema": fits}).status_code == 200
    over = _schema_of_size(131072, None)
    response = post(http, gw, "/generate-object", {"prompt": "p", "schema": over})
    assert (response.status_code, response.json()["error"]) == (500, "spawn E2BIG")


def test_stream_object_prompt_carries_the_indented_schema(gw: LocalGateway) -> None:
    # The /stream-object prompt argument = prompt + a 163-byte instruction + the schema as
    # JSON.stringify(schema, null, 2): 131,071 bytes in all still spawns, one more does not.
    schema = _schema_of_size(1000, 2)
    prompt = "x" * (131071 - 163 - 1000)
    with httpx.Client(timeout=10) as http:
        events = stream(http, gw, {"prompt": prompt, "schema": schema}, "/stream-object")
    assert events[-1][0] == "done"
    with httpx.Client(timeout=10) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            post(http, gw, "/stream-object", {"prompt": prompt + "x", "schema": schema})
    assert gw.crashed
    gw.restart()


def test_a_stream_too_large_to_spawn_takes_the_gateway_down(
    koine_gateway_factory: Callable[..., LocalGateway],
) -> None:
    """As on the real gateway: the spawn error of a stream is not caught, its process exits.
    The client gets the headers, then the connection closes; later requests are refused until
    the gateway restarts."""
    gw = koine_gateway_factory()
    with httpx.Client(timeout=10) as http:
        with http.stream(
            "POST", gw.base_url + "/stream", json={"prompt": "x" * 131072}, headers=gw.headers
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            with pytest.raises(httpx.RemoteProtocolError):
                response.read()
        assert gw.crashed
        deadline = time.monotonic() + 5
        while gw.running and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not gw.running
        with pytest.raises(httpx.ConnectError):
            http.get(gw.base_url + "/health")
        gw.restart()
        assert not gw.crashed
        assert post(http, gw, "/generate-text", {"prompt": "back"}).json()["text"] == "Echo: back"


# -- tools -----------------------------------------------------------------------------------


def args_of(http: httpx.Client, gw: LocalGateway, **body: Any) -> dict[str, Any]:
    response = post(http, gw, "/generate-text", {"prompt": "[[args]] hi", **body})
    assert response.status_code == 200, response.text
    return json.loads(response.json()["text"])


def test_effective_tools(http: httpx.Client, gw: LocalGateway) -> None:
    assert args_of(http, gw)["allowedTools"] is None
    assert args_of(http, gw, allowedTools=["Read", "Glob"])["allowedTools"] == ["Read", "Glob"]
    assert args_of(http, gw, allowedTools=[])["allowedTools"] is None  # empty: no allow-list
    gw.configure(allowed_tools=["Read", "Grep", "Bash"], disallowed_tools=["Bash"])
    assert args_of(http, gw)["allowedTools"] == ["Read", "Grep"]
    assert args_of(http, gw, allowedTools=["Grep", "Write", "Bash"])["allowedTools"] == ["Grep"]
    both = args_of(http, gw, allowedTools=["Grep", "Read"])["allowedTools"]
    assert both == ["Read", "Grep"]  # in the gateway's order
    response = post(http, gw, "/stream", {"prompt": "hi", "allowedTools": ["Bash", "Write"]})
    assert response.status_code == 400
    assert response.json() == {
        "error": "No valid tools available: all requested tools are disallowed",
        "code": "NO_TOOLS_AVAILABLE",
    }


def test_args_show_model_system_and_resume(http: httpx.Client, gw: LocalGateway) -> None:
    first = post(http, gw, "/generate-text", {"prompt": "hello"}).json()["sessionId"]
    args = args_of(http, gw, model="sonnet", system="Be brief.", sessionId=first)
    assert args == {
        "allowedTools": None,
        "model": "sonnet",
        "outputFormat": "json",
        "prompt": "hi",
        "resume": first,
        "system": "Be brief.",
    }


# -- concurrency -----------------------------------------------------------------------------


def test_concurrency_limit_and_slot_before_validation(http: httpx.Client, gw: LocalGateway) -> None:
    gw.configure(max_nonstreaming=1)
    gw.script_text("slow", first_byte_delay=0.6)
    holder = threading.Thread(target=post, args=(http, gw, "/generate-text", {"prompt": "a"}))
    holder.start()
    try:
        deadline = time.monotonic() + 2
        while gw.active["nonStreaming"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = post(http, gw, "/generate-text", {"prompt": "b"})
        assert busy.status_code == 429
        assert busy.headers["retry-after"] == "5"
        assert busy.json() == {
            "error": "Concurrency limit exceeded",
            "code": "CONCURRENCY_LIMIT_ERROR",
        }
        invalid = post(http, gw, "/generate-object", {"nothing": True})
        assert invalid.status_code == 429  # the slot is taken before the body is validated
        # the streaming class has its own limit
        assert post(http, gw, "/stream", {"prompt": "c"}).status_code == 200
    finally:
        holder.join()
    assert gw.rejected == 2
    assert gw.peak == {"streaming": 1, "nonStreaming": 1}
    assert post(http, gw, "/generate-text", {"prompt": "d"}).status_code == 200


async def test_concurrent_streams_never_exceed_the_limit(gw: LocalGateway) -> None:
    gw.configure(max_streaming=2, chunk_delay=0.05)
    async with httpx.AsyncClient(base_url=gw.base_url, headers=gw.headers, timeout=10) as client:
        responses = await asyncio.gather(
            *(client.post("/stream", json={"prompt": f"a b c {i}"}) for i in range(6))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429, 429]
    assert gw.peak["streaming"] == 2 and gw.rejected == 4


# -- sessions --------------------------------------------------------------------------------


def test_two_session_ids_on_a_new_stream(http: httpx.Client, gw: LocalGateway) -> None:
    events = stream(http, gw, {"prompt": "My name is Ada"})
    announced = events[0][1]["sessionId"]
    resumable = next(d for n, d in events if n == "result")["sessionId"]
    assert announced != resumable
    assert resumable in gw.sessions and announced not in gw.sessions
    follow = stream(http, gw, {"prompt": "And now? [[history]]", "sessionId": resumable})
    assert follow[0][1]["sessionId"] == resumable
    assert next(d for n, d in follow if n == "result")["sessionId"] == resumable
    assert text_of(follow) == (
        "Echo: And now? | previous: My name is Ada | history: My name is Ada"
    )
    # resuming with the session event's id fails like the real CLI
    wrong = stream(http, gw, {"prompt": "x", "sessionId": announced})
    assert [n for n, _ in wrong] == ["session", "error", "done"]
    assert "No conversation found" in wrong[1][1]["error"]
    assert wrong[1][1]["code"] == "CLI_EXIT_ERROR" and wrong[2][1]["code"] == 1
    failed = post(http, gw, "/generate-text", {"prompt": "x", "sessionId": announced})
    assert failed.status_code == 500 and failed.json()["code"] == "CLI_EXIT_ERROR"


def test_multi_turn_across_endpoints(http: httpx.Client, gw: LocalGateway) -> None:
    sid = post(http, gw, "/generate-text", {"prompt": "one"}).json()["sessionId"]
    second = post(http, gw, "/generate-text", {"prompt": "two", "sessionId": sid}).json()
    assert second == {**second, "text": "Echo: two | previous: one", "sessionId": sid}
    obj = post(
        http, gw, "/generate-object", {"prompt": "three", "sessionId": sid, "schema": SCHEMA}
    )
    assert obj.json()["sessionId"] == sid
    third = post(http, gw, "/generate-text", {"prompt": "four [[history]]", "sessionId": sid})
    assert third.json()["text"] == "Echo: four | previous: three | history: one / two / three"
    assert gw.sessions[sid] == ["one", "two", "three", "four"]


def test_lenient_sessions(http: httpx.Client, gw: LocalGateway) -> None:
    gw.configure(strict_sessions=False)
    response = post(http, gw, "/generate-text", {"prompt": "hi", "sessionId": "mine"})
    assert response.json()["sessionId"] == "mine" and response.json()["text"] == "Echo: hi"
    gw.seed_session("seeded", ["before"])
    gw.configure(strict_sessions=True)
    seeded = post(http, gw, "/generate-text", {"prompt": "now", "sessionId": "seeded"})
    assert seeded.json()["text"] == "Echo: now | previous: before"


# -- framing ---------------------------------------------------------------------------------


def test_every_event_is_its_own_http_chunk(gw: LocalGateway) -> None:
    head, chunks = raw_request(gw, "/stream", b'{"prompt":"raw framing here"}')
    lines = head.decode().lower().split("\r\n")
    assert lines[0] == "http/1.1 200 ok"
    for header in (
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "connection: keep-alive",
        "x-accel-buffering: no",
        "transfer-encoding: chunked",
    ):
        assert header in lines
    assert not any(line.startswith("content-length") for line in lines)
    assert len(chunks) == 7  # session, 4 words, result, done
    for chunk in chunks:
        text = chunk.decode()
        assert text.count("\n\n") == 1 and text.endswith("\n\n")
        name_line, data_line = text[:-2].split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        payload = data_line[6:]
        assert json.dumps(json.loads(payload), separators=(",", ":"), ensure_ascii=False) == payload
    assert chunks[1] == b'event: text\ndata: {"text":"Echo:"}\n\n'
    assert chunks[-1] == b'event: done\ndata: {"code":0,"signal":null}\n\n'


def test_events_per_chunk_packs_events(gw: LocalGateway) -> None:
    gw.configure(events_per_chunk=4)
    gw.script_text([str(i) for i in range(10)])
    _, chunks = raw_request(gw, "/stream", b'{"prompt":"p"}')
    body = b"".join(chunks).decode()
    assert len(chunks) == 4  # 13 events: 4 + 4 + 4, then done with the end of the body
    assert text_of(parse_sse(body)) == "0123456789"


def test_json_responses_use_compact_utf8(http: httpx.Client, gw: LocalGateway) -> None:
    response = post(http, gw, "/generate-text", {"prompt": "héllo [[unicode]]"})
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert b"h\xc3\xa9llo" in response.content and b"\\u" not in response.content
    assert b'{"text":"Echo: ' in response.content
    assert response.json()["text"].endswith("🚀✨👩‍💻")


# -- the model through HTTP ------------------------------------------------------------------


def test_text_reply_is_streamed_word_by_word(http: httpx.Client, gw: LocalGateway) -> None:
    events = stream(http, gw, {"prompt": "Tell me  a story"})
    texts = [d["text"] for n, d in events if n == "text"]
    assert texts == ["Echo:", " Tell", " me", "  a", " story"]
    usage = next(d for n, d in events if n == "result")["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > 0
    chunked = stream(http, gw, {"prompt": "abcdefghij [[chunks=3]]"})
    assert [d["text"] for n, d in chunked if n == "text"] == ["Echo: ", "abcdef", "ghij"]


def test_stream_object_from_the_schema(http: httpx.Client, gw: LocalGateway) -> None:
    events = stream(http, gw, {"prompt": "weather", "schema": SCHEMA}, "/stream-object")
    names = [n for n, _ in events]
    assert names[0] == "session" and names[-3:] == ["object", "result", "done"]
    partials = [d for n, d in events if n == "partial-object"]
    assert len(partials) >= 3 and partials[0]["parsed"] == {}
    assert events[-3][1] == {"object": {"city": "example", "temp": 1.5}}
    assert partials[-1]["parsed"] == {"city": "example", "temp": 1.5}
    texts = [p["partial"] for p in partials]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))


def test_top_level_array_schema(http: httpx.Client, gw: LocalGateway) -> None:
    schema = {
        "type": "array",
        "items": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
    body = {"prompt": "list [[items=3]]", "schema": schema}
    assert post(http, gw, "/generate-object", body).json()["object"] == [{"n": 1}] * 3
    events = stream(http, gw, body, "/stream-object")
    assert next(d for n, d in events if n == "object") == {"object": [{"n": 1}] * 3}


def test_generate_object_fence_and_badjson(http: httpx.Client, gw: LocalGateway) -> None:
    fenced = post(http, gw, "/generate-object", {"prompt": "w [[fence]]", "schema": SCHEMA})
    assert fenced.status_code == 500  # JSON.parse, no fallback on this endpoint
    assert fenced.json() == {
        "error": 'Unexpected token \'`\', "```json\n{""... is not valid JSON',
        "code": "INTERNAL_ERROR",
    }
    bad = post(http, gw, "/generate-object", {"prompt": "w [[badjson]]", "schema": SCHEMA})
    assert bad.status_code == 500 and bad.json()["code"] == "INTERNAL_ERROR"


@pytest.mark.parametrize("size", [1000, 70000, 300000])
def test_bytes_directive_gives_exact_utf8(http: httpx.Client, gw: LocalGateway, size: int) -> None:
    text = post(http, gw, "/generate-text", {"prompt": f"big [[bytes={size}]] [[unicode]]"}).json()
    assert len(text["text"].encode()) == size and "\ufffd" not in text["text"]
    events = stream(http, gw, {"prompt": f"big [[bytes={size}]] [[unicode]] [[chunks=2]]"})
    joined = text_of(events)
    assert len(joined.encode()) == size and "\ufffd" not in joined
    assert len([n for n, _ in events if n == "text"]) == 2


# -- scripting -------------------------------------------------------------------------------


def test_scripted_text_chunks_are_sent_exactly(http: httpx.Client, gw: LocalGateway) -> None:
    gw.script_text(["Hel", "lo ", "wör", "ld\n"])
    gw.script_text("second")
    events = stream(http, gw, {"prompt": "ignored"})
    assert [d["text"] for n, d in events if n == "text"] == ["Hel", "lo ", "wör", "ld\n"]
    assert post(http, gw, "/generate-text", {"prompt": "x"}).json()["text"] == "second"
    assert post(http, gw, "/generate-text", {"prompt": "x"}).json()["text"] == "Echo: x"


def test_scripted_object(http: httpx.Client, gw: LocalGateway) -> None:
    value = {"items": [{"name": "ä", "ok": True}, None], "n": 3.25}
    gw.script_object(value, piece_size=5)
    events = stream(http, gw, {"prompt": "x", "schema": SCHEMA}, "/stream-object")
    partials = [d for n, d in events if n == "partial-object"]
    assert partials[-1]["partial"] == json.dumps(value, ensure_ascii=False)
    assert next(d for n, d in events if n == "object") == {"object": value}
    gw.script_object([1, 2, 3])
    response = post(http, gw, "/generate-object", {"prompt": "x", "schema": SCHEMA})
    assert response.json()["object"] == [1, 2, 3] and response.json()["rawText"] == "[1, 2, 3]"


def test_scripted_raw_text_needs_fallback(http: httpx.Client, gw: LocalGateway) -> None:
    gw.script_raw('Here you go:\n```json\n{"city": "Oslo", "temp": -3}\n```\nEnjoy!')
    events = stream(http, gw, {"prompt": "x", "schema": SCHEMA}, "/stream-object")
    assert [n for n, _ in events] == ["session", "warning", "object", "result", "done"]
    assert events[1][1] == {
        "message": "JSON extraction used fallback strategy: markdown-block",
        "code": "EXTRACTION_FALLBACK",
    }
    assert events[2][1] == {"object": {"city": "Oslo", "temp": -3}}
    gw.script_raw("no json at all")
    events = stream(http, gw, {"prompt": "x", "schema": SCHEMA}, "/stream-object")
    assert [n for n, _ in events] == ["session", "error", "result", "done"]
    assert events[1][1]["code"] == "PARSE_ERROR" and events[-1][1]["code"] == 0


def test_scripted_latency(http: httpx.Client, gw: LocalGateway) -> None:
    gw.script_text(["a", "b", "c"], first_byte_delay=0.3)
    began = time.perf_counter()
    with http.stream("POST", gw.base_url + "/stream", json={"prompt": "x"}, headers=gw.headers):
        assert time.perf_counter() - began >= 0.28
    gw.script_text(["a", "b", "c", "d"], chunk_delay=0.1)
    arrivals: list[float] = []
    began = time.perf_counter()
    with http.stream(
        "POST", gw.base_url + "/stream", json={"prompt": "x"}, headers=gw.headers
    ) as r:
        for line in r.iter_lines():
            if line.startswith("event: text"):
                arrivals.append(time.perf_counter() - began)
    assert len(arrivals) == 4 and arrivals[0] >= 0.08
    assert arrivals[-1] - arrivals[0] >= 0.25  # the pieces really come apart in time
    gw.configure(first_byte_delay=0.2)
    began = time.perf_counter()
    post(http, gw, "/generate-text", {"prompt": "x"})
    assert time.perf_counter() - began >= 0.18


def test_delay_directive_on_generate(http: httpx.Client, gw: LocalGateway) -> None:
    began = time.perf_counter()
    response = post(http, gw, "/generate-text", {"prompt": "slow [[delay=0.3]]"})
    assert time.perf_counter() - began >= 0.28
    assert response.json()["text"] == "Echo: slow"


# -- recording, disconnects, reset -----------------------------------------------------------


def test_requests_are_recorded(http: httpx.Client, gw: LocalGateway) -> None:
    post(http, gw, "/generate-text", {"prompt": "hi"}, **{"X-Trace": "t1"})
    http.post(
        gw.base_url + "/stream",
        content=b"{oops",
        headers={**gw.headers, "Content-Type": "application/json"},
    )
    http.get(gw.base_url + "/health")
    first, second, third = gw.requests
    assert (first.method, first.path) == ("POST", "/generate-text")
    assert first.headers["x-trace"] == "t1"
    assert first.headers["authorization"] == f"Bearer {gw.auth_key}"
    assert first.json == {"prompt": "hi"} and json.loads(first.body) == {"prompt": "hi"}
    assert (second.path, second.body, second.json) == ("/stream", b"{oops", None)
    assert (third.method, third.path, third.json) == ("GET", "/health", None)
    assert first.client is not None and first.client[0] == "127.0.0.1"
    assert first.client == second.client == third.client  # one pooled connection
    httpx.get(gw.base_url + "/health")
    assert gw.requests[-1].client != first.client  # a new connection, a new peer port


def test_client_disconnect_mid_stream_is_noticed(http: httpx.Client, gw: LocalGateway) -> None:
    gw.script_text([f"w{i} " for i in range(50)], chunk_delay=0.05)
    with http.stream(
        "POST", gw.base_url + "/stream", json={"prompt": "x"}, headers=gw.headers
    ) as r:
        for line in r.iter_lines():
            if line.startswith("event: text"):
                break
    assert gw.wait_for_disconnect(timeout=3)
    assert gw.disconnects == 1
    assert gw.wait_idle(3)
    # complete responses are not disconnects
    post(http, gw, "/generate-text", {"prompt": "x"})
    stream(http, gw, {"prompt": "y"})
    assert not gw.wait_for_disconnect(timeout=0.2, count=2)


def test_disconnect_during_a_delay_of_a_json_request(gw: LocalGateway) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.base_url + "/generate-text",
            json={"prompt": "x [[delay=5]]"},
            headers=gw.headers,
            timeout=0.3,
        )
    assert gw.wait_for_disconnect(timeout=3)
    assert gw.wait_idle(3)


def test_reset_restores_everything(http: httpx.Client, gw: LocalGateway) -> None:
    gw.configure(max_streaming=1, chunk_delay=0.01, disallowed_tools=["Bash"])
    gw.script_text("queued")
    sid = post(http, gw, "/generate-text", {"prompt": "x"}).json()["sessionId"]
    gw.script_text("left over")
    gw.reset()
    assert gw.settings.max_streaming == 3 and gw.settings.chunk_delay == 0.0
    assert gw.settings.disallowed_tools == ()
    assert gw.requests == [] and gw.sessions == {} and gw.disconnects == 0
    assert post(http, gw, "/generate-text", {"prompt": "x"}).json()["text"] == "Echo: x"
    assert sid not in gw.sessions


# -- speed -----------------------------------------------------------------------------------


def test_hundred_thousand_chunks(gw: LocalGateway) -> None:
    count = 100_000
    gw.script_text(["x"] * count)
    body = json.dumps({"prompt": "p"}).encode()
    began = time.perf_counter()
    _, chunks = raw_request(gw, "/stream", body)
    elapsed = time.perf_counter() - began
    assert len(chunks) == count + 3
    assert chunks[-1].startswith(b"event: done")
    rate = count / elapsed
    print(f"\n{rate:,.0f} events/s ({elapsed:.2f} s for {count:,} one-chunk events)")
    assert rate > 3000  # loose: shared 2-core machines; typically 15-25k/s


def test_requests_are_fast(http: httpx.Client, gw: LocalGateway) -> None:
    post(http, gw, "/generate-text", {"prompt": "warm"})
    began = time.perf_counter()
    for _ in range(20):
        post(http, gw, "/generate-text", {"prompt": "hi"})
    per_request = (time.perf_counter() - began) / 20
    print(f"\n{per_request * 1000:.2f} ms per /generate-text")
    assert per_request < 0.03  # no 40 ms Nagle/delayed-ACK stall
