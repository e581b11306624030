"""Fault injection over real HTTP: every Fault kind, queued and by prompt directive."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest
from _gateway_http import SCHEMA, parse_sse, post

from koine_sdk.testing import Fault, FaultKind, LocalGateway, Reply


def names(text: str) -> list[str]:
    return [name for name, _ in parse_sse(text)]


def read_raw_stream(gw: LocalGateway, body: dict[str, Any]) -> tuple[bytes, bool]:
    """The raw bytes of a /stream response body read until the server closes; and whether the
    chunked body ended properly."""
    with httpx.Client(timeout=5) as client:
        with client.stream("POST", gw.base_url + "/stream", json=body, headers=gw.headers) as r:
            received = b""
            try:
                for piece in r.iter_bytes():
                    received += piece
            except httpx.RemoteProtocolError:
                return received, False
    return received, True


# -- the CLI fails ---------------------------------------------------------------------------


def test_cli_error_after_chunks(http: httpx.Client, gw: LocalGateway) -> None:
    gw.inject(Fault.cli_error(after=2, message="boom"))
    response = post(http, gw, "/stream", {"prompt": "a b c d"})
    events = parse_sse(response.text)
    assert [n for n, _ in events] == ["session", "text", "text", "error", "done"]
    assert events[3][1] == {"error": "CLI exited with code 1 - boom", "code": "CLI_EXIT_ERROR"}
    assert events[4][1] == {"code": 1, "signal": None}
    gw.inject(Fault.cli_error())
    response = post(http, gw, "/stream-object", {"prompt": "x", "schema": SCHEMA})
    assert names(response.text) == ["session", "error", "done"]


@pytest.mark.parametrize("path", ["/generate-text", "/generate-object"])
@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.cli_error(3), "CLI_EXIT_ERROR"),
        (Fault.is_error(), "CLI_EXIT_ERROR"),
        (Fault.no_result(), "PARSE_ERROR"),
    ],
)
def test_cli_failures_on_json_endpoints(
    http: httpx.Client, gw: LocalGateway, path: str, fault: Fault, code: str
) -> None:
    gw.inject(fault)
    response = post(http, gw, path, {"prompt": "x", "schema": SCHEMA})
    assert response.status_code == 500
    assert response.json()["code"] == code


def test_is_error_and_no_result_streams(http: httpx.Client, gw: LocalGateway) -> None:
    response = post(http, gw, "/stream", {"prompt": "a b [[is-error]]"})
    assert names(response.text) == ["session", "text", "text", "text", "error", "done"]
    events = parse_sse(response.text)
    assert events[-2][1]["code"] == "CLI_EXIT_ERROR" and events[-1][1]["code"] == 1
    assert "is_error" in events[-2][1]["error"]
    response = post(http, gw, "/stream", {"prompt": "a b [[noresult]]"})
    assert names(response.text) == ["session", "text", "text", "text", "done"]
    response = post(http, gw, "/stream-object", {"prompt": "[[noresult]]", "schema": SCHEMA})
    assert names(response.text)[-1] == "done" and "result" not in names(response.text)


# -- the wire --------------------------------------------------------------------------------


def test_drop_mid_stream_has_no_done(gw: LocalGateway) -> None:
    gw.inject(Fault.drop(after=2))
    received, complete = read_raw_stream(gw, {"prompt": "a b c d e"})
    assert not complete
    assert names(received.decode()) == ["session", "text", "text"]
    assert gw.disconnects == 0  # the server hung up, not the client
    assert gw.wait_idle(2)
    # by directive, on /stream-object too
    with pytest.raises(httpx.RemoteProtocolError):
        post(
            httpx.Client(timeout=5),
            gw,
            "/stream-object",
            {"prompt": "[[drop-after=1]]", "schema": SCHEMA},
        )


def test_drop_on_a_json_endpoint(gw: LocalGateway) -> None:
    gw.inject(Fault.drop())
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.RemoteProtocolError):
        post(client, gw, "/generate-text", {"prompt": "x"})


def test_close_before_headers(gw: LocalGateway) -> None:
    with httpx.Client(timeout=5) as client:
        gw.inject(Fault.close_before_headers())
        with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
            post(client, gw, "/stream", {"prompt": "x"})
        with pytest.raises(httpx.RemoteProtocolError):
            post(client, gw, "/generate-text", {"prompt": "x [[close-before-headers]]"})
        assert post(client, gw, "/generate-text", {"prompt": "x"}).status_code == 200
    assert gw.disconnects == 0


def test_malformed_data_line(http: httpx.Client, gw: LocalGateway) -> None:
    gw.inject(Fault.malformed_line(after=1))
    text = post(http, gw, "/stream", {"prompt": "a b"}).text
    blocks = text.split("\n\n")
    bad = [b for b in blocks if "unquoted" in b]
    assert len(bad) == 1
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad[0].split("data: ", 1)[1])
    assert blocks.index(bad[0]) == 2  # after session and one text
    assert blocks[-2].startswith("event: done")
    response = post(http, gw, "/generate-text", {"prompt": "a [[malformed-after=0]]"})
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    # among partial objects the broken line is a partial-object event, for that parser to meet
    gw.inject(Fault.malformed_line(after=2))
    text = post(http, gw, "/stream-object", {"prompt": "w", "schema": SCHEMA}).text
    bad = [b for b in text.split("\n\n") if "unquoted" in b]
    assert len(bad) == 1 and bad[0].startswith("event: partial-object\n")


def test_unknown_events_and_extra_warnings(http: httpx.Client, gw: LocalGateway) -> None:
    gw.inject(Fault.unknown_events(), Fault.extra_warnings())
    got = names(post(http, gw, "/stream", {"prompt": "a"}).text)
    known = ["session", "warning", "text", "text", "warning", "result", "done"]
    assert got == [known[0]] + [n for name in known[1:] for n in ("x-koine-future", name)]
    warning = parse_sse(post(http, gw, "/stream", {"prompt": "a [[warnings]]"}).text)[1]
    assert warning == (
        "warning",
        {"message": "Could not parse trailing CLI output", "code": "BUFFER_PARSE_WARNING"},
    )


def test_crlf_framing(gw: LocalGateway) -> None:
    gw.inject(Fault.crlf())
    received, complete = read_raw_stream(gw, {"prompt": "a b"})
    assert complete
    assert received.count(b"\r\n") == received.count(b"\n") > 0
    assert received.startswith(b"event: session\r\ndata: {")
    assert names(received.decode()) == ["session", "text", "text", "text", "result", "done"]


def test_split_utf8_across_two_writes(gw: LocalGateway) -> None:
    gw.inject(Fault.split_utf8(pause=0.05))
    pieces: list[bytes] = []
    with httpx.Client(timeout=5) as client:
        with client.stream(
            "POST", gw.base_url + "/stream", json={"prompt": "x"}, headers=gw.headers
        ) as r:
            pieces = list(r.iter_raw())
    cut = next(i for i, p in enumerate(pieces) if p and p[-1] >= 0x80)
    with pytest.raises(UnicodeDecodeError):
        pieces[cut].decode()
    assert (pieces[cut] + pieces[cut + 1]).decode()  # together they are whole again
    text = "".join(d["text"] for n, d in parse_sse(b"".join(pieces).decode()) if n == "text")
    assert text.startswith("Echo: x | unicode: h") and "🚀" in text


def test_huge_event(http: httpx.Client, gw: LocalGateway) -> None:
    gw.inject(Fault.huge_event(size=1_000_000))
    events = parse_sse(post(http, gw, "/stream", {"prompt": "x"}).text)
    texts = [d["text"] for n, d in events if n == "text"]
    assert len(texts) == 1 and len(texts[0].encode()) == 1_000_000
    big = post(http, gw, "/generate-text", {"prompt": "x [[huge=2000]]"}).json()["text"]
    assert len(big.encode()) == 2000


def test_events_after_done(http: httpx.Client, gw: LocalGateway) -> None:
    gw.inject(Fault.events_after_done())
    got = names(post(http, gw, "/stream", {"prompt": "a"}).text)
    assert got == ["session", "text", "text", "result", "done", "text", "done"]


# -- a proxy in front ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "body_start"),
    [
        (Fault.http_error(502), 502, "text/html", b"<html>"),
        (Fault.http_error(500), 500, "text/html", b"<html>"),
        (Fault.http_error(502, "empty"), 502, None, b""),
        (Fault.http_error(503, "Service down"), 503, "text/plain; charset=utf-8", b"Service down"),
        (Fault.unauthorized(), 401, "application/json; charset=utf-8", b'{"error":"Missing'),
        (Fault.forbidden(), 403, "application/json; charset=utf-8", b'{"error":"Invalid API key"}'),
    ],
)
@pytest.mark.parametrize("path", ["/generate-text", "/stream"])
def test_http_errors(
    http: httpx.Client,
    gw: LocalGateway,
    fault: Fault,
    status: int,
    content_type: str | None,
    body_start: bytes,
    path: str,
) -> None:
    gw.inject(fault)
    response = post(http, gw, path, {"prompt": "x"})
    assert response.status_code == status
    assert response.headers.get("content-type") == content_type
    assert response.content.startswith(body_start)
    if body_start == b"":
        assert response.content == b"" and response.headers["content-length"] == "0"


def test_rate_limited_with_and_without_retry_after(http: httpx.Client, gw: LocalGateway) -> None:
    gw.inject(Fault.rate_limited())
    gw.inject(Fault.rate_limited(retry_after=None))
    gw.inject(Fault.rate_limited(retry_after=1))
    first, second, third = (post(http, gw, "/stream", {"prompt": "x"}) for _ in range(3))
    assert first.status_code == second.status_code == third.status_code == 429
    assert first.headers["retry-after"] == "5" and "retry-after" not in second.headers
    assert third.headers["retry-after"] == "1"
    assert first.json() == {
        "error": "Concurrency limit exceeded",
        "code": "CONCURRENCY_LIMIT_ERROR",
    }
    assert post(http, gw, "/stream", {"prompt": "x"}).status_code == 200


@pytest.mark.parametrize(
    ("directive", "status", "retry_after"),
    [
        ("[[status=502]]", 502, None),
        ("[[status=429]]", 429, "5"),
        ("[[status=429:no-retry-after]]", 429, None),
        ("[[status=500:empty]]", 500, None),
        ("[[status=401]]", 401, None),
    ],
)
def test_status_directive(
    http: httpx.Client, gw: LocalGateway, directive: str, status: int, retry_after: str | None
) -> None:
    response = post(http, gw, "/generate-text", {"prompt": f"x {directive}"})
    assert response.status_code == status
    assert response.headers.get("retry-after") == retry_after


def test_slow_first_byte(gw: LocalGateway) -> None:
    gw.inject(Fault.slow_first_byte(0.5))
    with httpx.Client(timeout=httpx.Timeout(5, read=0.2)) as client:
        with pytest.raises(httpx.ReadTimeout):
            post(client, gw, "/stream", {"prompt": "x"})
    began = time.perf_counter()
    response = post(
        httpx.Client(timeout=5), gw, "/generate-text", {"prompt": "x [[first-byte=0.3]]"}
    )
    assert time.perf_counter() - began >= 0.28 and response.status_code == 200


# -- objects ---------------------------------------------------------------------------------


def test_no_object_event(http: httpx.Client, gw: LocalGateway) -> None:
    gw.inject(Fault.no_object())
    got = names(post(http, gw, "/stream-object", {"prompt": "x", "schema": SCHEMA}).text)
    assert "object" not in got and got[-2:] == ["result", "done"] and "partial-object" in got


def test_invalid_object(http: httpx.Client, gw: LocalGateway) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    gw.inject(Fault.invalid_object())
    events = parse_sse(post(http, gw, "/stream-object", {"prompt": "x", "schema": SCHEMA}).text)
    value = next(d for n, d in events if n == "object")["object"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value, SCHEMA)
    body = {"prompt": "x [[invalid-object]]", "schema": SCHEMA}
    value = post(http, gw, "/generate-object", body).json()["object"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value, SCHEMA)
    fine = post(http, gw, "/generate-object", {"prompt": "x", "schema": SCHEMA}).json()["object"]
    jsonschema.validate(fine, SCHEMA)


def test_invalid_object_for_the_first_n_turns_of_a_conversation(
    http: httpx.Client, gw: LocalGateway
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    first = post(
        http, gw, "/generate-object", {"prompt": "x [[invalid-object=2]]", "schema": SCHEMA}
    )
    session = first.json()["sessionId"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(first.json()["object"], SCHEMA)
    answers = []
    for _ in range(2):
        body = {"prompt": "fix it", "schema": SCHEMA, "sessionId": session}
        answers.append(post(http, gw, "/generate-object", body).json())
        session = answers[-1]["sessionId"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(answers[0]["object"], SCHEMA)  # the second turn: still invalid
    jsonschema.validate(answers[1]["object"], SCHEMA)  # the third: valid
    # another conversation is not affected
    other = post(http, gw, "/generate-object", {"prompt": "y", "schema": SCHEMA}).json()
    jsonschema.validate(other["object"], SCHEMA)


@pytest.mark.parametrize("cut", ["blank-line", "mid-line"])
def test_cut_end(gw: LocalGateway, cut: str) -> None:
    gw.inject(Fault.cli_error(after=1), Fault.cut_end(cut))
    received, ended = read_raw_stream(gw, {"prompt": "a b c"})
    assert not ended  # the connection closed: no proper end of the chunked body
    tail = received.decode()
    assert "event: done" not in tail
    head, _, last = tail.rpartition("event: error\n")
    assert head.endswith("\n\n")
    if cut == "blank-line":
        assert last.startswith('data: {"error":') and last.endswith("}\n")
        assert json.loads(last[6:])["code"] == "CLI_EXIT_ERROR"
    else:
        assert last.startswith('data: {"error":') and not last.endswith("\n")
    gw.inject(Fault.cut_end(cut))  # a run that succeeds stops inside its result event
    received, ended = read_raw_stream(gw, {"prompt": "ok"})
    _, _, last = received.decode().rpartition("event: result\n")
    assert not ended and last.startswith('data: {"sessionId":')
    assert last.endswith("}\n") if cut == "blank-line" else not last.endswith("\n")


# -- the queue -------------------------------------------------------------------------------


def test_faults_and_replies_are_consumed_in_order(http: httpx.Client, gw: LocalGateway) -> None:
    gw.enqueue(Fault.rate_limited(), Reply.text(["scripted"], faults=[Fault.crlf()]))
    assert post(http, gw, "/generate-text", {"prompt": "x"}).status_code == 429
    response = post(http, gw, "/stream", {"prompt": "x"})
    assert "\r\n" in response.text
    assert [d["text"] for n, d in parse_sse(response.text) if n == "text"] == ["scripted"]
    assert post(http, gw, "/generate-text", {"prompt": "x"}).json()["text"] == "Echo: x"


def test_every_fault_kind_has_a_directive() -> None:
    from koine_sdk.testing import DIRECTIVES

    listed = " ".join(DIRECTIVES)
    for kind in FaultKind:
        assert kind.value in listed, kind


def test_unknown_directives_stay_in_the_text(http: httpx.Client, gw: LocalGateway) -> None:
    response = post(http, gw, "/generate-text", {"prompt": "a [[nonsense]] b [[chunks=x]]"})
    assert response.json()["text"] == "Echo: a [[nonsense]] b [[chunks=x]]"


def test_server_stop_ends_open_streams() -> None:
    gateway = LocalGateway().start()
    gateway.script_text(["a"] * 100, chunk_delay=1.0)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        body = b'{"prompt":"x"}'
        sock.sendall(
            f"POST /stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gateway.auth_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        began = time.perf_counter()
        gateway.stop()
        assert time.perf_counter() - began < 2
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
        assert b"event: done" not in rest
