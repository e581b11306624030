"""The deterministic "model" behind the local gateway: no I/O in here.

It plays the part of the Claude CLI the real gateway spawns: it reads ``[[directives]]`` from the
prompt (:mod:`._directives`), remembers conversations per session id, echoes prompts, builds a
value for a JSON Schema (:mod:`._examples`), and turns all that into a :class:`Run` (what the CLI
prints, and how it fails) that the HTTP layer replays on the wire.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._directives import Directives, parse_directives
from ._endpoints import Endpoint, GenerateRequest
from ._examples import break_value, example_for_schema
from ._faults import Fault, FaultKind, Reply
from ._jsontext import compact, spaced
from ._text import UNICODE_TEXT, filler, split_even, split_pieces, split_words, tokens

__all__ = ["Model", "Run"]

RAWLINE_TEXT = "this line is not JSON ([[rawline]] directive)"
BADJSON_TEXT = "Sorry, I cannot produce JSON for that request."
OBJECT_PIECE = 7  # characters per piece of a streamed JSON text, by default
BYTES_PIECE = 16384  # characters per text event for [[bytes=N]] without [[chunks=N]]


@dataclass(slots=True)
class Run:
    """One CLI run as the HTTP layer replays it."""

    chunks: Sequence[str]
    session_event_id: str
    result_session_id: str
    input_tokens: int
    pre_lines: tuple[str, ...] = ()
    delay: float = 0.0
    chunk_delay: float = 0.0
    first_byte_delay: float = 0.0
    faults: dict[FaultKind, Fault] = field(default_factory=dict[FaultKind, Fault])
    error_message: str | None = None  # the CLI's stderr when it fails

    @property
    def fail_after(self) -> int | None:
        fault = self.faults.get(FaultKind.CLI_ERROR)
        return None if fault is None else fault.after

    def usage(self, text: str) -> dict[str, int]:
        output = tokens(text)
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": output,
            "totalTokens": self.input_tokens + output,
        }


class Model:
    """Deterministic replies plus the conversations it remembers (by the CLI's session id)."""

    def __init__(self) -> None:
        self.sessions: dict[str, list[str]] = {}
        # Session id -> how many more answers must violate the schema ([[invalid-object=N]]).
        self.invalid_left: dict[str, int] = {}

    def reset(self) -> None:
        """Forget every conversation."""
        self.sessions.clear()
        self.invalid_left.clear()

    def front_faults(self, prompt: object, reply: Reply | None) -> list[Fault]:
        """Faults of the queued reply and the prompt, read before the request is validated."""
        faults = list(reply.faults) if reply else []
        if isinstance(prompt, str) and "[[" in prompt:
            faults += parse_directives(prompt)[1].faults
        return faults

    def run(
        self,
        endpoint: Endpoint,
        request: GenerateRequest,
        reply: Reply | None,
        *,
        tools: list[str] | None,
        strict_sessions: bool,
        chunk_delay: float,
        first_byte_delay: float,
    ) -> Run:
        """Plan the CLI run for one request (and record the turn in its session)."""
        prompt, found = parse_directives(request.prompt)
        faults = {f.kind: f for f in found.faults}
        if reply is not None:
            faults.update((f.kind, f) for f in reply.faults)
        sent_id = request.session_id
        history = self.sessions.get(sent_id, []) if sent_id else []
        run = Run(
            chunks=[],
            session_event_id=sent_id or str(uuid.uuid4()),
            result_session_id=sent_id or str(uuid.uuid4()),
            input_tokens=tokens(request.prompt),
            delay=found.delay,
            chunk_delay=found.slow or chunk_delay,
            first_byte_delay=first_byte_delay,
            faults=faults,
        )
        if endpoint is Endpoint.STREAM_OBJECT and request.schema is not None:
            run.input_tokens += 100 + tokens(compact(request.schema))
        if reply is not None:
            if reply.first_byte_delay is not None:
                run.first_byte_delay = reply.first_byte_delay
            if reply.chunk_delay is not None:
                run.chunk_delay = reply.chunk_delay
        if slow := faults.get(FaultKind.SLOW_FIRST_BYTE):
            run.first_byte_delay = max(run.first_byte_delay, slow.delay)
        if fail := faults.get(FaultKind.CLI_ERROR):
            run.error_message = fail.message or "Error: simulated CLI failure (injected fault)"
        elif FaultKind.IS_ERROR in faults:
            run.error_message = "Error: the CLI reported a result with is_error: true"
        if sent_id and sent_id not in self.sessions and strict_sessions:
            run.faults[FaultKind.CLI_ERROR] = Fault.cli_error(0)
            run.error_message = f"No conversation found with session ID: {sent_id}"
            return run
        if found.rawline and endpoint is Endpoint.STREAM:
            run.pre_lines = (RAWLINE_TEXT,)
        left = found.invalid_turns
        if not left and sent_id and endpoint.wants_object:
            left = self.invalid_left.pop(sent_id, 0)
        if left > 0 and endpoint.wants_object:
            faults[FaultKind.INVALID_OBJECT] = Fault.invalid_object()
            if left > 1:
                self.invalid_left[run.result_session_id] = left - 1
        run.chunks = self._chunks(endpoint, request, reply, prompt, found, faults, history, tools)
        if run.fail_after != 0:
            self.sessions.setdefault(run.result_session_id, []).append(prompt)
        return run

    def _chunks(
        self,
        endpoint: Endpoint,
        request: GenerateRequest,
        reply: Reply | None,
        prompt: str,
        found: Directives,
        faults: dict[FaultKind, Fault],
        history: list[str],
        tools: list[str] | None,
    ) -> Sequence[str]:
        if reply is not None and reply.chunks is not None:
            return reply.chunks
        huge = faults.get(FaultKind.HUGE_EVENT)
        unicode = found.unicode or (FaultKind.SPLIT_UTF8 in faults and not endpoint.wants_object)
        if found.args:
            args = {
                "allowedTools": tools,
                "model": request.model,
                "outputFormat": "stream-json" if endpoint.streaming else "json",
                "prompt": prompt,
                "resume": request.session_id,
                "system": request.system,
            }
            text = json.dumps(args, sort_keys=True, ensure_ascii=False)
        elif found.badjson:
            text = BADJSON_TEXT
        elif huge is not None and not endpoint.wants_object:
            return [filler(huge.size, unicode)]
        elif found.bytes is not None and not endpoint.wants_object:
            text = filler(found.bytes, unicode)
            if found.chunks is None and not found.nopartial:
                return split_even(text, math.ceil(len(text) / BYTES_PIECE))
        elif endpoint.wants_object and request.schema is not None:
            value = example_for_schema(request.schema, items=found.items, unicode=found.unicode)
            if FaultKind.INVALID_OBJECT in faults:
                value = break_value(value)
            text = (spaced if endpoint.streaming else compact)(value)
            if found.fence:
                text = f"```json\n{text}\n```"
            elif found.chunks is None and not found.nopartial:
                return split_pieces(text, OBJECT_PIECE)
        else:
            text = f"Echo: {prompt}"
            if history:
                text += f" | previous: {history[-1]}"
                if found.history:
                    text += f" | history: {' / '.join(history)}"
            if unicode:
                text += f" | unicode: {UNICODE_TEXT}"
        if found.nopartial:
            return [text] if text else []
        if found.chunks is not None:
            return split_even(text, found.chunks)
        if endpoint.wants_object:
            return [text]
        return split_words(text)
