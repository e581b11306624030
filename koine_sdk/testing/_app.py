"""The local gateway's HTTP side: a Starlette app that speaks the Koine wire protocol.

Check order follows the real (Express) gateway: body parse (500 on bad JSON) → bearer auth
(401/403) → route (404) → concurrency slot (429) → body validation (400) → tools (400) → CLI
spawn (E2BIG: 500 on ``/generate-*``; on the streams the gateway's process exits) → the run.
Streams are written with raw ASGI ``http.response.body`` messages, one per event, so every event
leaves as its own HTTP chunk.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._faults import JSON_TYPE, Fault, FaultKind, Reply
from ._model import (
    Endpoint,
    Model,
    Run,
    compact,
    extract_json,
    js_parse_error,
    partial_parse,
)
from ._settings import GatewaySettings
from ._spawn import E2BIG_BYTES, cli_argument_sizes
from ._validate import effective_tools, validate

__all__ = ["GatewayState", "RecordedRequest", "build_app"]

MAX_BODY_BYTES = 10 * 1024 * 1024
_RAW_SEND = "koine.raw_send"
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the gateway received it."""

    method: str
    path: str
    headers: dict[str, str]  # lowercased names
    body: bytes
    json: Any  # the parsed body, or None when it is absent or not JSON
    client: tuple[str, int] | None = None  # the peer: one per connection (pooling shows here)
    time: float = field(default_factory=time.monotonic)


class GatewayState:
    """Everything the app and the test thread share. Counters change on the server's loop only;
    queues and records are guarded by ``lock``."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.initial = settings
        self.settings = settings
        self.model = Model()
        self.lock = threading.Condition()
        self.replies: collections.deque[Reply] = collections.deque()
        self.requests: list[RecordedRequest] = []
        self.active = {"streaming": 0, "nonStreaming": 0}
        self.peak = {"streaming": 0, "nonStreaming": 0}
        self.rejected = 0
        self.disconnects = 0
        self.contexts: set[_Context] = set()
        self.crashed = False
        # Called on the server's loop when a spawn error takes the "process" down (set by
        # LocalGateway: it stops the server).
        self.on_crash: Callable[[], None] | None = None

    def reset(self) -> None:
        with self.lock:
            self.settings = self.initial
            self.replies.clear()
            self.requests.clear()
            self.model.reset()
            self.peak = dict(self.active)
            self.rejected = 0
            self.disconnects = 0

    def configure(self, **changes: Any) -> GatewaySettings:
        for name in ("allowed_tools", "disallowed_tools"):
            if changes.get(name) is not None:
                changes[name] = tuple(changes[name])
        self.settings = replace(self.settings, **changes)
        return self.settings

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)
            self.lock.notify_all()

    def pop_reply(self) -> Reply | None:
        with self.lock:
            return self.replies.popleft() if self.replies else None

    def note_disconnect(self) -> None:
        with self.lock:
            self.disconnects += 1
            self.lock.notify_all()

    def acquire(self, kind: str) -> bool:
        limit = (
            self.settings.max_streaming if kind == "streaming" else self.settings.max_nonstreaming
        )
        if self.active[kind] >= limit:
            self.rejected += 1
            return False
        self.active[kind] += 1
        self.peak[kind] = max(self.peak[kind], self.active[kind])
        return True

    def release(self, kind: str) -> None:
        with self.lock:
            self.active[kind] -= 1
            self.lock.notify_all()

    def shutdown(self) -> None:
        """Called on the loop when the server stops: end every sleep and stream at once."""
        for ctx in list(self.contexts):
            ctx.stop.set()

    def crash(self) -> None:
        """The gateway's process exits (a CLI spawn error on a stream): every stream in flight
        ends without ``done`` and no further connection is accepted."""
        self.crashed = True
        self.shutdown()
        if self.on_crash is not None:
            self.on_crash()


class _AbortConnectionError(Exception):
    """Raised to make the server drop a connection when its transport cannot be reached."""


class _Context:
    """Per-request: notices the client going away, and can close the connection itself."""

    __slots__ = (
        "client_gone",
        "finished",
        "listener",
        "raw_send",
        "server_closed",
        "state",
        "stop",
    )

    def __init__(self, state: GatewayState, receive: Receive, raw_send: Send | None) -> None:
        self.state = state
        self.raw_send = raw_send
        self.stop = asyncio.Event()
        self.finished = False
        self.server_closed = False
        self.client_gone = False
        self.listener = asyncio.get_running_loop().create_task(self._listen(receive))
        state.contexts.add(self)

    async def _listen(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.finished and not self.server_closed:
            self.client_gone = True
            self.state.note_disconnect()
        self.stop.set()

    async def pause(self, seconds: float) -> bool:
        """Sleep; False when the client left or the server stops meanwhile."""
        if seconds > 0:
            try:
                async with asyncio.timeout(seconds):
                    await self.stop.wait()
            except TimeoutError:
                pass
        return not self.stop.is_set()

    async def abort(self) -> None:
        """Close the connection now (data already written is still flushed)."""
        self.server_closed = True
        owner = getattr(self.raw_send, "__self__", None)
        transport = getattr(owner, "transport", None)
        if transport is None:
            raise _AbortConnectionError
        transport.close()
        try:
            async with asyncio.timeout(1.0):
                await self.stop.wait()  # the server has seen the connection go
        except TimeoutError:
            pass

    def close(self) -> None:
        self.finished = True
        self.listener.cancel()
        self.state.contexts.discard(self)


# -- plain responses -------------------------------------------------------------------------


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(compact(payload).encode(), status, dict(headers or {}), JSON_TYPE)


def _error(status: int, message: str, code: str | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"error": message}
    if code is not None:
        body["code"] = code
    body.update(extra)
    return _json(status, body)


class _Aborted(Response):
    """A response that was never sent: the connection is gone."""

    def __init__(self) -> None:
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


_NO_KEY = Fault.unauthorized()
_WRONG_KEY = Fault.forbidden()
_BUSY = Fault.rate_limited()
_INTERNAL = Fault.http_error(500, "json")


def _fault_response(fault: Fault) -> Response:
    return Response(fault.body, fault.status, dict(fault.headers))  # content type as given


# -- streams ---------------------------------------------------------------------------------


class _Writer:
    """Writes events for one stream, with the wire faults of its run applied."""

    def __init__(self, send: Send, ctx: _Context, run: Run, events_per_chunk: int = 1) -> None:
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


def _result(run: Run, text: str) -> tuple[bytes, Any]:
    return b"result", {"sessionId": run.result_session_id, "usage": run.usage(text)}


_DONE_OK: tuple[bytes, Any] = (b"done", {"code": 0, "signal": None})


async def _stream_text(w: _Writer, run: Run) -> None:
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


async def _stream_object(w: _Writer, run: Run) -> None:
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


class _Crash(Response):
    """What a stream whose CLI cannot be spawned gets from the real gateway: the status line
    and headers, then the connection closes as the gateway's process exits (the spawn error is
    not caught on the streaming routes). This gateway then stops too: connections are refused
    until :meth:`LocalGateway.restart`."""

    def __init__(self, ctx: _Context, release: Callable[[], None]) -> None:
        self.background = None
        self.ctx = ctx
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            self.ctx.state.crash()
            await self.ctx.abort()
        finally:
            self.ctx.close()
            self.release()


class _EventStream(Response):
    """``text/event-stream`` written event by event; owns the request's slot and context."""

    def __init__(
        self,
        routine: Callable[[_Writer, Run], Awaitable[None]],
        run: Run,
        ctx: _Context,
        release: Callable[[], None],
        events_per_chunk: int,
    ) -> None:
        self.background = None
        self.events_per_chunk = events_per_chunk
        self.routine = routine
        self.run = run
        self.ctx = ctx
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            # The body goes straight to the server's send: Starlette's wrappers only watch for
            # the response start, and skipping them saves a few microseconds per event.
            body_send = self.ctx.raw_send or send
            writer = _Writer(body_send, self.ctx, self.run, self.events_per_chunk)
            await self.routine(writer, self.run)
            ctx = self.ctx
            if ctx.stop.is_set() and not (ctx.finished or ctx.server_closed or ctx.client_gone):
                await ctx.abort()  # the server is stopping: no done for this stream
        finally:
            self.ctx.close()
            self.release()


# -- the app ---------------------------------------------------------------------------------

_BAD_JSON = object()


def _parse_body(request: Request, raw: bytes) -> Any:
    """Like express.json(): only for a JSON content type; empty → {}; strict (object/array)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" or not raw.strip():
        return {}
    if len(raw) > MAX_BODY_BYTES:
        return _BAD_JSON  # express.json({limit: "10mb"}) fails, the error handler answers 500
    text = raw.decode("utf-8", "replace")
    if text.lstrip()[:1] not in ("{", "["):
        return _BAD_JSON
    try:
        return _strict_loads(text)
    except ValueError:
        return _BAD_JSON


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_loads(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constants)


def _auth_error(settings: GatewaySettings, request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):  # as the gateway checks it: case and space matter
        return _fault_response(_NO_KEY)
    if not secrets.compare_digest(header[7:].encode(), settings.auth_key.encode()):
        return _fault_response(_WRONG_KEY)
    return None


def _front_fault(faults: list[Fault]) -> Fault | None:
    for fault in faults:
        if fault.kind in (FaultKind.HTTP_STATUS, FaultKind.CLOSE_BEFORE_HEADERS):
            return fault
    return None


class _Handlers:
    def __init__(self, state: GatewayState) -> None:
        self.state = state

    async def _receive(self, request: Request) -> Any:
        """Read and record the request; its parsed body (``_BAD_JSON`` if it is not JSON)."""
        raw = await request.body()
        body = _parse_body(request, raw)
        headers = {k: v for k, v in request.headers.items()}
        parsed = None if body is _BAD_JSON or not raw.strip() else body
        peer = (request.client.host, request.client.port) if request.client else None
        record = RecordedRequest(request.method, request.url.path, headers, raw, parsed, peer)
        self.state.record(record)
        return body

    async def health(self, request: Request) -> Response:
        body = await self._receive(request)
        if body is _BAD_JSON:
            return _fault_response(_INTERNAL)
        if request.method not in ("GET", "HEAD"):
            return _error(404, "Not found")  # /health skips auth whatever the method
        s, state = self.state.settings, self.state
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        payload: dict[str, Any] = {
            "status": "healthy" if s.healthy else "unhealthy",
            "claudeCli": "available" if s.healthy else "unavailable",
            "timestamp": stamp,
        }
        if s.report_concurrency:
            payload["concurrency"] = {
                "streaming": {"active": state.active["streaming"], "limit": s.max_streaming},
                "nonStreaming": {
                    "active": state.active["nonStreaming"],
                    "limit": s.max_nonstreaming,
                },
            }
        return _json(200 if s.healthy else 503, payload)

    async def not_found(self, request: Request) -> Response:
        body = await self._receive(request)
        if body is _BAD_JSON:
            return _fault_response(_INTERNAL)
        return _auth_error(self.state.settings, request) or _error(404, "Not found")

    def endpoint(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if request.method != "POST":
                return await self.not_found(request)
            return await self.generate(request, endpoint)

        return handle

    async def generate(self, request: Request, endpoint: Endpoint) -> Response:
        state = self.state
        body = await self._receive(request)
        reply = state.pop_reply()
        settings = state.settings
        prompt = cast(dict[str, Any], body).get("prompt") if isinstance(body, dict) else None
        faults = state.model.front_faults(prompt, reply)
        ctx = _Context(state, request.receive, request.scope.get(_RAW_SEND))
        handed_off = False
        kind = "streaming" if endpoint.streaming else "nonStreaming"
        slot = False
        try:
            fault = _front_fault(faults)
            if fault is not None and fault.kind is FaultKind.CLOSE_BEFORE_HEADERS:
                await ctx.abort()
                return _Aborted()
            if fault is not None:
                return _fault_response(fault)
            if body is _BAD_JSON:
                return _fault_response(_INTERNAL)
            denied = _auth_error(settings, request)
            if denied is not None:
                return denied
            if not state.acquire(kind):
                return _fault_response(_BUSY)
            slot = True
            parsed, issues = validate(body, endpoint)
            if parsed is None:
                raw_text = compact(issues)
                return _error(400, "Invalid request body", "VALIDATION_ERROR", rawText=raw_text)
            tools_ok, tools = effective_tools(settings, parsed.allowed_tools)
            if not tools_ok:
                message = "No valid tools available: all requested tools are disallowed"
                return _error(400, message, "NO_TOOLS_AVAILABLE")
            too_big = any(
                size >= E2BIG_BYTES for size in cli_argument_sizes(endpoint, parsed, tools)
            )
            if too_big and not endpoint.streaming:
                return _error(500, "spawn E2BIG", "INTERNAL_ERROR")
            if too_big:  # the spawn error is not caught there: the gateway process exits
                handed_off = True
                release = lambda: state.release(kind)  # noqa: E731
                return _Crash(ctx, release)
            run = state.model.run(
                endpoint,
                parsed,
                reply,
                tools=tools,
                strict_sessions=settings.strict_sessions,
                chunk_delay=settings.chunk_delay,
                first_byte_delay=settings.first_byte_delay,
            )
            if not await ctx.pause(run.first_byte_delay):
                return _Aborted()
            if endpoint.streaming:
                routine = _stream_text if endpoint is Endpoint.STREAM else _stream_object
                handed_off = True
                release = lambda: state.release(kind)  # noqa: E731
                return _EventStream(routine, run, ctx, release, settings.events_per_chunk)
            return await self._complete(endpoint, run, ctx)
        finally:
            if not handed_off:
                ctx.close()
                if slot:
                    state.release(kind)

    async def _complete(self, endpoint: Endpoint, run: Run, ctx: _Context) -> Response:
        """The non-streaming answer: wait as long as the CLI would, then one JSON body."""
        faults = run.faults
        if FaultKind.DROP in faults:
            await ctx.abort()
            return _Aborted()
        wait = run.delay + run.chunk_delay * len(run.chunks)
        if not await ctx.pause(wait):
            return _Aborted()
        if FaultKind.CLI_ERROR in faults or FaultKind.IS_ERROR in faults:
            return _error(500, "Claude CLI exited with code 1", "CLI_EXIT_ERROR")
        if FaultKind.NO_RESULT in faults:
            message = (
                "Failed to parse CLI output: No valid result found in CLI output "
                "(0 lines, 0 parse errors). Output preview: "
            )
            return _error(500, message, "PARSE_ERROR")
        text = "".join(run.chunks)
        payload: dict[str, Any]
        if endpoint is Endpoint.GENERATE_OBJECT:
            try:  # JSON.parse: no fallback here (the CLI's constrained decoding is trusted)
                value = _strict_loads(text)
            except ValueError:
                return _error(500, js_parse_error(text), "INTERNAL_ERROR")
            payload = {"object": value, "rawText": text}
        else:
            payload = {"text": text}
        payload["usage"] = run.usage(text)
        payload["sessionId"] = run.result_session_id
        if FaultKind.MALFORMED_LINE in faults:
            encoded = compact(payload).encode()
            return Response(encoded[: math.ceil(len(encoded) / 2)], 200, None, JSON_TYPE)
        return _json(200, payload)


def build_app(state: GatewayState) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app of a local gateway over ``state``."""
    handlers = _Handlers(state)
    routes = [Route("/health", handlers.health, methods=_ALL_METHODS)]
    routes += [Route(e.value, handlers.endpoint(e), methods=_ALL_METHODS) for e in Endpoint]
    routes.append(Route("/{rest:path}", handlers.not_found, methods=_ALL_METHODS))
    starlette = Starlette(routes=routes)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[_RAW_SEND] = send  # the server's own send: it can reach the socket
        await starlette(scope, receive, send)

    return app
