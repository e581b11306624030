"""The incremental SSE decoder: every WHATWG parsing rule, the real gateway captures, and
property tests over arbitrary chunkings of the byte stream."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _captures import CAPTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koine_sdk._sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def decode_bytewise(body: bytes) -> list[ServerSentEvent]:
    return decode(*(body[i : i + 1] for i in range(len(body))))


# -- rules ------------------------------------------------------------------------------------


def test_gateway_framing() -> None:
    body = b'event: text\ndata: {"text":"hi"}\n\nevent: done\ndata: {"code":0}\n\n'
    assert decode(body) == [
        ServerSentEvent("text", '{"text":"hi"}'),
        ServerSentEvent("done", '{"code":0}'),
    ]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_line_endings(eol: bytes) -> None:
    body = eol.join([b"event: a", b"data: 1", b"", b"data: 2", b"data: 3", b"", b""])
    expected = [ServerSentEvent("a", "1"), ServerSentEvent("message", "2\n3")]
    assert decode(body) == expected
    assert decode_bytewise(body) == expected


def test_cr_and_lf_in_different_chunks_are_one_line_break() -> None:
    # If the CR/LF pair were two breaks, the empty line between would dispatch "a" early and
    # "b" would become a second event.
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [
        ServerSentEvent("message", "a\nb")
    ]


def test_cr_then_empty_chunks_then_lf() -> None:
    assert decode(b"data: a\r", b"", b"\n", b"\r\n") == [ServerSentEvent("message", "a")]


def test_mixed_line_endings() -> None:
    assert decode(b"data: a\rdata: b\r\ndata: c\n\r") == [ServerSentEvent("message", "a\nb\nc")]


def test_only_cr_and_lf_break_lines() -> None:
    # str.splitlines would split on all of these; SSE must not.
    odd = "a\x0bb\x0cc\x1cd\x1de\x1ef\x85g\u2028h\u2029i"
    body = f"data: {odd}\n\n".encode()
    assert decode(body) == [ServerSentEvent("message", odd)]
    assert decode_bytewise(body) == [ServerSentEvent("message", odd)]


def test_one_leading_space_stripped() -> None:
    assert decode(b"data:x\n\ndata: x\n\ndata:  x\n\n") == [
        ServerSentEvent("message", "x"),
        ServerSentEvent("message", "x"),
        ServerSentEvent("message", " x"),
    ]


def test_value_may_contain_colons() -> None:
    assert decode(b'data: {"a": "b:c"}\n\n') == [ServerSentEvent("message", '{"a": "b:c"}')]


def test_line_without_colon_is_field_with_empty_value() -> None:
    assert decode(b"data\n\n") == [ServerSentEvent("message", "")]
    assert decode(b"data\ndata\n\n") == [ServerSentEvent("message", "\n")]
    assert decode(b"event: x\nevent\ndata: 1\n\n") == [ServerSentEvent("message", "1")]


def test_comments_ignored() -> None:
    body = b": keep-alive\nevent: a\n:another\ndata: 1\n: x\n\n:\n\n"
    assert decode(body) == [ServerSentEvent("a", "1")]


def test_event_without_data_not_dispatched_and_type_reset() -> None:
    body = b"event: lonely\n\ndata: 1\n\n"
    assert decode(body) == [ServerSentEvent("message", "1")]


def test_event_type_resets_after_dispatch() -> None:
    assert decode(b"event: a\ndata: 1\n\ndata: 2\n\n") == [
        ServerSentEvent("a", "1"),
        ServerSentEvent("message", "2"),
    ]


def test_unknown_fields_ignored() -> None:
    assert decode(b"foo: bar\nDATA: x\ndata: 1\n\n") == [ServerSentEvent("message", "1")]


def test_id_persists_and_nul_ignored() -> None:
    body = b"id: 7\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid\ndata: d\n\n"
    assert decode(body) == [
        ServerSentEvent("message", "a", id="7"),
        ServerSentEvent("message", "b", id="7"),
        ServerSentEvent("message", "c", id="7"),
        ServerSentEvent("message", "d", id=""),
    ]


def test_last_event_id_property() -> None:
    decoder = SSEDecoder()
    assert decoder.last_event_id is None
    decoder.feed(b"id: 42\n")
    assert decoder.last_event_id == "42"


def test_retry_only_ascii_digits() -> None:
    body = (
        b"retry: 1500\ndata: a\n\n"
        b"retry: 15x\ndata: b\n\n"
        b"retry: \xc2\xb2\ndata: c\n\n"
        b"retry:\ndata: d\n\n"
        b"retry: -1\ndata: e\n\n"
    )
    assert [e.retry for e in decode(body)] == [1500, None, None, None, None]


def test_leading_bom_skipped_once() -> None:
    bom = b"\xef\xbb\xbf"
    assert decode(bom + b"data: 1\n\n") == [ServerSentEvent("message", "1")]
    # Split inside the BOM itself.
    assert decode(bom[:1], bom[1:2], bom[2:] + b"data: 1\n\n") == [ServerSentEvent("message", "1")]
    # A second BOM is part of the field name: "\ufeffdata" is an unknown field.
    assert decode(bom + bom + b"data: 1\n\n") == []
    # A BOM later on is ordinary data.
    assert decode(b"data: " + bom + b"\n\n") == [ServerSentEvent("message", "\ufeff")]


def test_multibyte_utf8_split_across_chunks() -> None:
    text = "héllo wörld — 你好 😀"
    body = f"data: {text}\n\n".encode()
    assert decode_bytewise(body) == [ServerSentEvent("message", text)]


def test_invalid_utf8_replaced_not_raised() -> None:
    assert decode(b"data: a\xffb\n\n") == [ServerSentEvent("message", "a\ufffdb")]
    # A truncated multi-byte sequence at the end of the body sits in a cut line: dropped.
    assert decode(b"data: a\xe4\xbd") == []
    assert decode(b"data: a\xe4\xbd\n") == [ServerSentEvent("message", "a\ufffd")]


def test_close_delivers_event_whose_lines_are_whole() -> None:
    # Deviation from browsers (documented): every line arrived whole, only the blank line is
    # missing, so nothing of the event is lost.
    assert decode(b"event: done\ndata: {}\n") == [ServerSentEvent("done", "{}")]
    assert decode(b"event: done\ndata: {}\r") == [ServerSentEvent("done", "{}")]
    assert decode(b"event: done\r\ndata: {}\r\n") == [ServerSentEvent("done", "{}")]
    assert decode(b"data: a\ndata: b\n") == [ServerSentEvent("message", "a\nb")]


def test_close_drops_a_line_cut_mid_way() -> None:
    # The cut line may be a truncated JSON value: never handed on.
    assert decode(b"event: done\ndata: {}") == []
    assert decode(b'event: error\ndata: {"error":"bo') == []
    # Earlier whole lines of the same event still count.
    assert decode(b"data: a\ndata: b") == [ServerSentEvent("message", "a")]
    # A cut "event:" line does not rename the event.
    assert decode(b"data: a\nevent: err") == [ServerSentEvent("message", "a")]


def test_close_without_data_delivers_nothing() -> None:
    assert decode(b"event: done\n") == []
    assert decode(b": just a comment") == []
    assert decode(b"") == []


def test_decoder_reusable_after_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 1\nevent: a\ndata: x\n") == []
    assert decoder.close() == [ServerSentEvent("a", "x", id="1")]
    assert decoder.feed(b"data: cut") == []
    assert decoder.close() == []
    assert decoder.feed(b"data: y\n\n") == [ServerSentEvent("message", "y")]


def test_events_returned_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("message", "1")]
    assert decoder.feed(b"data: 2\n\ndata: 3\n") == [ServerSentEvent("message", "2")]
    assert decoder.close() == [ServerSentEvent("message", "3")]


def test_large_event_in_small_chunks() -> None:
    payload = "x" * 1_000_000
    body = f"data: {payload}\n\n".encode()
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for i in range(0, len(body), 1024):
        events += decoder.feed(body[i : i + 1024])
    assert events == [ServerSentEvent("message", payload)]


# -- real captures ----------------------------------------------------------------------------


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


def _capture_body(path: Path) -> bytes:
    raw = path.read_bytes()
    start = raw.index(b"HTTP/1.1 ")
    head_end = raw.index(b"\r\n\r\n", start)
    head = raw[start:head_end].decode("latin-1").lower()
    body = raw[head_end + 4 :]
    if path.name == "stream-raw-chunked.txt":
        assert "transfer-encoding: chunked" in head
        body = _dechunk(body)
    return body


_SAMPLES = sorted(CAPTURES.glob("stream*.txt"))


def _expected(body: bytes) -> list[tuple[str, str]]:
    """What the captures contain, read naively (they use the gateway's exact framing)."""
    out: list[tuple[str, str]] = []
    for block in body.decode("utf-8").split("\n\n"):
        lines = block.strip("\n").split("\n")
        if len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "):
            out.append((lines[0][7:], lines[1][6:]))
    return out


@pytest.mark.parametrize("path", _SAMPLES, ids=lambda p: p.name)
def test_real_captures(path: Path) -> None:
    body = _capture_body(path)
    expected = _expected(body)
    assert expected, "capture holds events"
    for events in (decode(body), decode_bytewise(body)):
        assert [(e.event, e.data) for e in events] == expected
        for event in events:
            json.loads(event.data)  # every data line is one JSON value
        assert events[-1].event == "done"
        assert events[0].event == "session"


def test_capture_unicode_and_chunked_specifics() -> None:
    samples = CAPTURES
    events = decode_bytewise(_capture_body(samples / "stream-unicode.txt"))
    text = "".join(json.loads(e.data)["text"] for e in events if e.event == "text")
    assert "\ufffd" not in text
    assert "héllo" in text
    assert "😀" in text or "🚀" in text
    events = decode(_capture_body(samples / "stream-raw-chunked.txt"))
    assert [e.event for e in events] == ["session", "text", "text", "result", "done"]
    assert json.loads(events[1].data) == {"text": "Echo: raw"}


# -- properties -------------------------------------------------------------------------------

# Field values: any text without CR / LF (those end a line); includes the characters that
# str.splitlines would wrongly treat as line breaks, and multi-byte characters.
_value_chars = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\r\n"
) | st.sampled_from(["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "é", "😀"])
_values = st.text(_value_chars, max_size=20)
_names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n:"),
    min_size=1,
    max_size=10,
).filter(lambda s: s[0] != "\ufeff")


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str]]]:
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    events = draw(
        st.lists(
            st.tuples(st.none() | _names, st.lists(_values, min_size=1, max_size=3)), max_size=6
        )
    )
    lines: list[str] = []
    expected: list[tuple[str, str]] = []
    for name, data_lines in events:
        if draw(st.booleans()):
            lines.append(":" + draw(_values))
        if name is not None:
            lines.append(f"event: {name}")
        for value in data_lines:
            # Keep a leading space of the value by always writing the separator space.
            lines.append(f"data: {value}")
        lines.append("")
        expected.append((name if name else "message", "\n".join(data_lines)))
    return eol.join(lines).encode() + (eol.encode() if lines else b""), expected


@st.composite
def _splits(draw: st.DrawFn, body: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=12)))
    chunks: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(body)]:
        chunks.append(body[prev:cut])
        prev = cut
    return chunks


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), _streams())
def test_any_split_gives_the_same_events(
    data: st.DataObject, stream: tuple[bytes, list[tuple[str, str]]]
) -> None:
    body, expected = stream
    whole = decode(body)
    assert [(e.event, e.data) for e in whole] == expected
    chunks = data.draw(_splits(body))
    split = decode(*chunks)
    assert split == whole
    assert "".join(e.data for e in split) == "".join(e.data for e in whole)
    assert decode_bytewise(body) == whole


@settings(max_examples=300)
@given(st.binary(max_size=200), st.data())
def test_arbitrary_bytes_never_raise(body: bytes, data: st.DataObject) -> None:
    whole = decode(body)
    chunks = data.draw(_splits(body))
    assert decode(*chunks) == whole
    for event in whole:
        assert isinstance(event.data, str)


@settings(max_examples=200)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"data: x", b":c", b"event: e", b"\xe4\xbd\xa0"])))
def test_line_break_soup_split_invariant(parts: list[bytes]) -> None:
    body = b"".join(parts)
    whole = decode(body)
    assert decode_bytewise(body) == whole


# -- end of body ------------------------------------------------------------------------------


def _oracle(body: bytes) -> list[tuple[str, str]]:
    """A one-shot reading of the end-of-body rule: only lines followed by a line break count;
    an event with data is dispatched at the end even without its blank line."""
    text = body.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    whole = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece has no line break after it
    events: list[tuple[str, str]] = []
    data: list[str] = []
    name = ""
    for line in [*whole, ""]:
        if not line:
            if data:
                events.append((name or "message", "\n".join(data)))
            data, name = [], ""
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    return events


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), _streams())
def test_a_body_cut_anywhere_keeps_whole_lines_only(
    data: st.DataObject, stream: tuple[bytes, list[tuple[str, str]]]
) -> None:
    body, _ = stream
    cut = data.draw(st.integers(0, len(body)))
    truncated = body[:cut]
    expected = _oracle(truncated)
    whole = decode(truncated)
    assert [(e.event, e.data) for e in whole] == expected
    assert decode(*data.draw(_splits(truncated))) == whole  # any split, the same events


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), _streams())
def test_a_last_event_without_its_blank_line_is_dispatched(
    data: st.DataObject, stream: tuple[bytes, list[tuple[str, str]]]
) -> None:
    body, expected = stream
    if not expected:
        return
    eol = b"\r\n" if body.endswith(b"\r\n") else body[-1:]
    without_blank_line = body[: -len(eol)]
    events = decode(*data.draw(_splits(without_blank_line)))
    assert [(e.event, e.data) for e in events] == expected


@settings(max_examples=200)
@given(st.binary(max_size=200), st.data())
def test_arbitrary_bytes_follow_the_end_of_body_rule(body: bytes, data: st.DataObject) -> None:
    events = decode(*data.draw(_splits(body)))
    assert [(e.event, e.data) for e in events] == _oracle(body)
