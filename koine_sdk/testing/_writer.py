"""The SSE writer: frames the events of one stream and sends them as raw ASGI body messages, with
the wire faults of its run applied (CRLF, unknown events, split UTF-8, drops, malformed lines,
cut ends, events after ``done``)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Send

from ._context import RequestContext
from ._faults import FaultKind
from ._jsontext import compact
from ._model import Run

__all__ = ["Writer"]


class Writer:
    """Writes events for one stream, with the wire faults of its run applied."""

    def __init__(
        self, send: Send, ctx: RequestContext, run: Run, events_per_chunk: int = 1
    ) -> None:
        self.send = send
        self.ctx = ctx
        faults = run.faults
        self.crlf = FaultKind.CRLF in faults
        self.unknown = FaultKind.UNKNOWN_EVENTS in faults
        self.warnings = FaultKind.EXTRA_WARNINGS in faults
        self.after_done = FaultKind.EVENTS_AFTER_DONE in faults
        self.split = faults.get(FaultKind.SPLIT_UTF8)
        self.drop = faults.get(FaultKind.DROP)
        self.malformed = faults.get(FaultKind.MALFORMED_LINE)
        self.cut_end = faults.get(FaultKind.CUT_END)
        self.batch = max(1, events_per_chunk)
        self.pending: list[bytes] = []
        self.plain = not (self.crlf or self.unknown or self.split) and self.batch == 1
        self.count = 0
        # The malformed line takes the name of the content events it sits among (``text`` or
        # ``partial-object``), so each endpoint's parser meets it.
        self.content_name = b"text"

    async def emit(self, name: bytes, data: bytes) -> bool:
        """Send one event; False once the stream must stop."""
        if self.ctx.stop.is_set():
            return False
        if name == b"partial-object":
            self.content_name = name
        if self.plain:
            frame = b"event: " + name + b"\ndata: " + data + b"\n\n"
            await self.send({"type": "http.response.body", "body": frame, "more_body": True})
        else:
            await self._emit_slow(name, data)
        self.count += 1
        if not self.count & 63:
            await asyncio.sleep(0)  # let the disconnect listener and other streams run
        return True

    async def _write(self, data: bytes) -> None:
        if self.batch == 1:
            await self.send({"type": "http.response.body", "body": data, "more_body": True})
            return
        self.pending.append(data)
        if len(self.pending) >= self.batch:
            await self.flush()

    async def flush(self) -> None:
        """Send the events held back by ``events_per_chunk``."""
        if self.pending:
            body = b"".join(self.pending)
            self.pending.clear()
            await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def _emit_slow(self, name: bytes, data: bytes) -> None:
        newline = b"\r\n" if self.crlf else b"\n"
        if self.unknown and name != b"session":
            await self._write(b"event: x-koine-future" + newline + b'data: {"note":"ignore me"}')
            await self._write(newline * 2)
        frame = b"event: " + name + newline + b"data: " + data + newline * 2
        if self.split is not None and max(frame) >= 0x80:
            cut = next(i for i, b in enumerate(frame) if b >= 0x80) + 1
            await self.flush()
            await self.send({"type": "http.response.body", "body": frame[:cut], "more_body": True})
            await asyncio.sleep(self.split.delay)
            frame = frame[cut:]
            self.split = None
        await self._write(frame)

    async def pause(self, seconds: float) -> bool:
        """Flush, then sleep; False when the stream must stop."""
        if seconds <= 0:
            return not self.ctx.stop.is_set()
        await self.flush()
        return await self.ctx.pause(seconds)

    async def session(self, session_id: str) -> bool:
        ok = await self.emit(b"session", compact({"sessionId": session_id}).encode())
        if ok and self.warnings:
            ok = await self.warning()
        return ok

    async def warning(self) -> bool:
        message = {"message": "Could not parse trailing CLI output", "code": "BUFFER_PARSE_WARNING"}
        return await self.emit(b"warning", compact(message).encode())

    async def before_chunk(self, index: int, delay: float) -> bool:
        """Faults due before model chunk ``index``, then the per-chunk delay."""
        if self.drop is not None and index == self.drop.after:
            await self.flush()
            await self.ctx.abort()
            return False
        if self.malformed is not None and index == self.malformed.after:
            name = self.content_name
            await self._write(b"event: " + name + b'\ndata: {"' + name + b'": unquoted broken\n\n')
        return await self.pause(delay) if delay > 0 else True

    async def end(self, *events: tuple[bytes, Any]) -> None:
        """The closing events (``result``/``error``/``done``...), then the end of the body."""
        if self.warnings and not await self.warning():
            return
        if self.cut_end is not None and events:
            name, payload = events[0]
            frame = b"event: " + name + b"\ndata: " + compact(payload).encode() + b"\n"
            if self.cut_end.cut == "mid-line":
                frame = frame[: len(frame) - len(compact(payload)) // 2 - 1]
            await self.flush()
            await self.send({"type": "http.response.body", "body": frame, "more_body": True})
            await self.ctx.abort()
            return
        for name, payload in events:
            if not await self.emit(name, compact(payload).encode()):
                return
        if self.after_done:
            await self.emit(b"text", b'{"text":"after done"}')
            await self.emit(b"done", b'{"code":0,"signal":null}')
        self.ctx.finished = True
        body = b"".join(self.pending)
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    async def cli_failed(self, run: Run) -> None:
        message = f"CLI exited with code 1 - {run.error_message or 'Error: CLI failure'}"
        await self.end(
            (b"error", {"error": message, "code": "CLI_EXIT_ERROR"}),
            (b"done", {"code": 1, "signal": None}),
        )
