"""What ``/stream`` and ``/stream-object`` send for a run: the events in order, through a
:class:`~._writer.Writer`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._faults import FaultKind
from ._jsontext import compact, extract_json, partial_parse
from ._model import Run
from ._writer import Writer

__all__ = ["stream_object", "stream_text"]


def _result(run: Run, text: str) -> tuple[bytes, Any]:
    return b"result", {"sessionId": run.result_session_id, "usage": run.usage(text)}


_DONE_OK: tuple[bytes, Any] = (b"done", {"code": 0, "signal": None})


async def _replay(w: Writer, run: Run, name: bytes, data: Callable[[str], bytes | None]) -> bool:
    """Every model chunk as a ``name`` event of ``data(chunk)`` (none when it gives None), with
    the faults due before, between and after the chunks. True when the run ends with a result for
    the caller to send; False when the stream has ended (a CLI failure, no result line, or the
    stream must stop)."""
    chunks, fail_after, delay = run.chunks, run.fail_after, run.chunk_delay
    for index, chunk in enumerate(chunks):
        if index == fail_after:
            await w.cli_failed(run)
            return False
        if not await w.before_chunk(index, delay):
            return False
        encoded = data(chunk)
        if encoded is not None and not await w.emit(name, encoded):
            return False
    if not await w.before_chunk(len(chunks), 0.0):
        return False
    if fail_after is not None or FaultKind.IS_ERROR in run.faults:
        await w.cli_failed(run)
        return False
    if FaultKind.NO_RESULT in run.faults:
        await w.end(_DONE_OK)
        return False
    return True


def _text_data(chunk: str) -> bytes:
    return b'{"text":' + compact(chunk).encode() + b"}"


async def stream_text(w: Writer, run: Run) -> None:
    if not await w.session(run.session_event_id) or not await w.pause(run.delay):
        return
    for line in run.pre_lines:
        if not await w.emit(b"text", compact({"text": line}).encode()):
            return
    if await _replay(w, run, b"text", _text_data):
        await w.end(_result(run, "".join(run.chunks)), _DONE_OK)


async def stream_object(w: Writer, run: Run) -> None:
    if not await w.session(run.session_event_id) or not await w.pause(run.delay):
        return
    text = ""
    last: bytes | None = None

    def partial_object_data(chunk: str) -> bytes | None:
        """The text so far and its partial parse, when that parses to a new value."""
        nonlocal text, last
        text += chunk
        ok, parsed = partial_parse(text)
        if not ok:
            return None
        encoded = compact(parsed).encode()
        if encoded == last:
            return None
        last = encoded
        return b'{"partial":' + compact(text).encode() + b',"parsed":' + encoded + b"}"

    if not await _replay(w, run, b"partial-object", partial_object_data):
        return
    ok, value, strategy = extract_json(text)
    events: list[tuple[bytes, Any]] = []
    if not ok:
        events.append(
            (b"error", {"error": "Failed to parse final JSON object", "code": "PARSE_ERROR"})
        )
    else:
        if strategy is not None:
            message = f"JSON extraction used fallback strategy: {strategy}"
            events.append((b"warning", {"message": message, "code": "EXTRACTION_FALLBACK"}))
        if FaultKind.NO_OBJECT not in run.faults:
            events.append((b"object", {"object": value}))
    await w.end(*events, _result(run, text), _DONE_OK)
