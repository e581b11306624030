"""The request handlers: ``/health``, the four generation endpoints, and 404 for the rest.

Check order follows the real (Express) gateway but for one hardening: bearer auth (401/403) and
the announced length come before the body is read (the real gateway parses first), so an
unauthenticated body is never read, kept or acted on; then body parse (500 on bad JSON; 413 past
10 MiB, while it streams in) → route (404) → concurrency slot (429) → body validation (400) →
tools (400) → CLI spawn (E2BIG: 500 on ``/generate-*``; on the streams the gateway's process
exits) → the run.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response

from ._context import RAW_SEND, RequestContext
from ._endpoints import Endpoint
from ._faults import JSON_TYPE, Fault, FaultKind
from ._jsontext import compact, js_parse_error, strict_loads
from ._model import Run
from ._request import BAD_JSON, MAX_BODY_BYTES, auth_error, parse_body
from ._responses import (
    BUSY,
    INTERNAL,
    Aborted,
    Crash,
    EventStream,
    error_response,
    fault_response,
    json_response,
)
from ._spawn import E2BIG_BYTES, cli_argument_sizes
from ._state import GatewayState, RecordedRequest
from ._streams import stream_object, stream_text
from ._validate import effective_tools, validate

__all__ = ["Handlers"]


def _front_fault(faults: list[Fault]) -> Fault | None:
    for fault in faults:
        if fault.kind in (FaultKind.HTTP_STATUS, FaultKind.CLOSE_BEFORE_HEADERS):
            return fault
    return None


class Handlers:
    def __init__(self, state: GatewayState) -> None:
        self.state = state

    async def _receive(self, request: Request, *, auth: bool = True) -> Any:
        """Read and record the request: its parsed body (``BAD_JSON`` if it is not JSON), or
        the Response that refuses it. The bearer key (when the route needs one) and the
        announced length are checked before any byte of the body is read; the body then
        streams in under the cap (413 as soon as it passes). A refused body is never kept."""
        headers = {k: v for k, v in request.headers.items()}
        peer = (request.client.host, request.client.port) if request.client else None
        method, path = request.method, request.url.path

        def refuse(response: Response) -> Response:
            self.state.record(RecordedRequest(method, path, headers, b"", None, peer))
            return response

        denied = auth_error(self.state.settings, request) if auth else None
        if denied is not None:
            return refuse(denied)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return refuse(error_response(413, "request entity too large"))
        parts: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return refuse(error_response(413, "request entity too large"))
            parts.append(chunk)
        raw = b"".join(parts)
        body = parse_body(request, raw)
        parsed = None if body is BAD_JSON or not raw.strip() else body
        self.state.record(RecordedRequest(method, path, headers, raw, parsed, peer))
        return body

    async def health(self, request: Request) -> Response:
        body = await self._receive(request, auth=False)  # /health needs no key
        if isinstance(body, Response):
            return body
        if body is BAD_JSON:
            return fault_response(INTERNAL)
        if request.method not in ("GET", "HEAD"):
            return error_response(404, "Not found")  # /health skips auth whatever the method
        s, state = self.state.settings, self.state
        if s.health_status is not None:  # a proxy in front answers for the gateway
            return fault_response(Fault.http_error(s.health_status, "html"))
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
        return json_response(200 if s.healthy else 503, payload)

    async def not_found(self, request: Request) -> Response:
        body = await self._receive(request)
        if isinstance(body, Response):
            return body
        if body is BAD_JSON:
            return fault_response(INTERNAL)
        return error_response(404, "Not found")

    def endpoint(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if request.method != "POST":
                return await self.not_found(request)
            return await self.generate(request, endpoint)

        return handle

    async def generate(self, request: Request, endpoint: Endpoint) -> Response:
        state = self.state
        body = await self._receive(request)  # the key is checked first: nothing runs without it
        if isinstance(body, Response):
            return body
        reply = state.pop_reply()
        settings = state.settings
        prompt = cast(dict[str, Any], body).get("prompt") if isinstance(body, dict) else None
        faults = state.model.front_faults(prompt, reply)
        ctx = RequestContext(state, request.receive, request.scope.get(RAW_SEND))
        handed_off = False
        kind = "streaming" if endpoint.streaming else "nonStreaming"
        release = functools.partial(state.release, kind)
        slot = False
        try:
            fault = _front_fault(faults)
            if fault is not None and fault.kind is FaultKind.CLOSE_BEFORE_HEADERS:
                await ctx.abort()
                return Aborted()
            if fault is not None:
                return fault_response(fault)
            if body is BAD_JSON:
                return fault_response(INTERNAL)
            if not state.acquire(kind):
                return fault_response(BUSY)
            slot = True
            parsed, issues = validate(body, endpoint)
            if parsed is None:
                raw_text = compact(issues)
                return error_response(
                    400, "Invalid request body", "VALIDATION_ERROR", rawText=raw_text
                )
            tools_ok, tools = effective_tools(settings, parsed.allowed_tools)
            if not tools_ok:
                message = "No valid tools available: all requested tools are disallowed"
                return error_response(400, message, "NO_TOOLS_AVAILABLE")
            too_big = any(
                size >= E2BIG_BYTES for size in cli_argument_sizes(endpoint, parsed, tools)
            )
            if too_big and not endpoint.streaming:
                return error_response(500, "spawn E2BIG", "INTERNAL_ERROR")
            if too_big:  # the spawn error is not caught there: the gateway process exits
                handed_off = True
                return Crash(ctx, release)
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
                return Aborted()
            if endpoint.streaming:
                routine = stream_text if endpoint is Endpoint.STREAM else stream_object
                handed_off = True
                return EventStream(routine, run, ctx, release, settings.events_per_chunk)
            return await self._complete(endpoint, run, ctx)
        finally:
            if not handed_off:
                ctx.close()
                if slot:
                    release()

    async def _complete(self, endpoint: Endpoint, run: Run, ctx: RequestContext) -> Response:
        """The non-streaming answer: wait as long as the CLI would, then one JSON body."""
        faults = run.faults
        if FaultKind.DROP in faults:
            await ctx.abort()
            return Aborted()
        wait = run.delay + run.chunk_delay * len(run.chunks)
        if not await ctx.pause(wait):
            return Aborted()
        if FaultKind.CLI_ERROR in faults or FaultKind.IS_ERROR in faults:
            return error_response(500, "Claude CLI exited with code 1", "CLI_EXIT_ERROR")
        if FaultKind.NO_RESULT in faults:
            message = (
                "Failed to parse CLI output: No valid result found in CLI output "
                "(0 lines, 0 parse errors). Output preview: "
            )
            return error_response(500, message, "PARSE_ERROR")
        text = "".join(run.chunks)
        payload: dict[str, Any]
        if endpoint is Endpoint.GENERATE_OBJECT:
            try:  # JSON.parse: no fallback here (the CLI's constrained decoding is trusted)
                value = strict_loads(text)
            except ValueError:
                return error_response(500, js_parse_error(text), "INTERNAL_ERROR")
            payload = {"object": value, "rawText": text}
        else:
            payload = {"text": text}
        payload["usage"] = run.usage(text)
        payload["sessionId"] = run.result_session_id
        if FaultKind.MALFORMED_LINE in faults:
            encoded = compact(payload).encode()
            return Response(encoded[: math.ceil(len(encoded) / 2)], 200, None, JSON_TYPE)
        return json_response(200, payload)
