"""What ``/stream`` and ``/stream-object`` send for a run: the events in order, through a
:class:`~._writer.Writer`."""

from __future__ import annotations

from typing import Any

from ._faults import FaultKind
from ._jsontext import compact, extract_json, partial_parse
from ._model import Run
from ._writer import Writer

__all__ = ["stream_object", "stream_text"]


def _result(run: Run, text: str) -> tuple[bytes, Any]:
    return b"result", {"sessionId": run.result_session_id, "usage": run.usage(text)}


_DONE_OK: tuple[bytes, Any] = (b"done", {"code": 0, "signal": None})


async def stream_text(w: Writer, run: Run) -> None:
    if not await w.session(run.session_event_id) or not await w.pause(run.delay):
        return
    for line in run.pre_lines:
        if not await w.emit(b"text", compact({"text": line}).encode()):
            return
    chunks, fail_after, delay = run.chunks, run.fail_after, run.chunk_delay
    for index, chunk in enumerate(chunks):
        if index == fail_after:
            return await w.cli_failed(run)
        if not await w.before_chunk(index, delay):
            return
        if not await w.emit(b"text", b'{"text":' + compact(chunk).encode() + b"}"):
            return
    if not await w.before_chunk(len(chunks), 0.0):
        return
    if fail_after is not None or FaultKind.IS_ERROR in run.faults:
        return await w.cli_failed(run)
    if FaultKind.NO_RESULT in run.faults:
        return await w.end(_DONE_OK)
    await w.end(_result(run, "".join(chunks)), _DONE_OK)


async def stream_object(w: Writer, run: Run) -> None:
    if not await w.session(run.session_event_id) or not await w.pause(run.delay):
        return
    chunks, fail_after, delay = run.chunks, run.fail_after, run.chunk_delay
    text = ""
    last: bytes | None = None
    for index, chunk in enumerate(chunks):
        if index == fail_after:
            return await w.cli_failed(run)
        if not await w.before_chunk(index, delay):
            return
        text += chunk
        ok, parsed = partial_parse(text)
        if not ok:
            continue
        encoded = compact(parsed).encode()
        if encoded != last:
            last = encoded
            data = b'{"partial":' + compact(text).encode() + b',"parsed":' + encoded + b"}"
            if not await w.emit(b"partial-object", data):
                return
    if not await w.before_chunk(len(chunks), 0.0):
        return
    if fail_after is not None or FaultKind.IS_ERROR in run.faults:
        return await w.cli_failed(run)
    if FaultKind.NO_RESULT in run.faults:
        return await w.end(_DONE_OK)
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
