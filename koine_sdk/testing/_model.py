"""The deterministic "model" behind the local gateway: no I/O in here.

It plays the part of the Claude CLI the real gateway spawns: it reads ``[[directives]]`` from the
prompt, remembers conversations per session id, echoes prompts, builds a value for a JSON Schema,
and turns all that into a :class:`Run` (what the CLI prints, and how it fails) that the HTTP layer
replays on the wire.
"""

from __future__ import annotations

import enum
import json
import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import jiter

from ._faults import Fault, FaultKind, Reply
from ._text import UNICODE_TEXT, filler, split_even, split_pieces, split_words, tokens

__all__ = [
    "DIRECTIVES",
    "Endpoint",
    "GenerateRequest",
    "Model",
    "Run",
    "example_for_schema",
    "extract_json",
    "partial_parse",
]

UNICODE_STRING = "example ✓ 日本語 🚀"
RAWLINE_TEXT = "this line is not JSON ([[rawline]] directive)"
BADJSON_TEXT = "Sorry, I cannot produce JSON for that request."
OBJECT_PIECE = 7  # characters per piece of a streamed JSON text, by default
BYTES_PIECE = 16384  # characters per text event for [[bytes=N]] without [[chunks=N]]

JsonEncode = Callable[[Any], str]
compact: JsonEncode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
spaced: JsonEncode = json.JSONEncoder(ensure_ascii=False).encode


class Endpoint(enum.Enum):
    """The four generation endpoints."""

    GENERATE_TEXT = "/generate-text"
    GENERATE_OBJECT = "/generate-object"
    STREAM = "/stream"
    STREAM_OBJECT = "/stream-object"

    @property
    def streaming(self) -> bool:
        return self in (Endpoint.STREAM, Endpoint.STREAM_OBJECT)

    @property
    def wants_object(self) -> bool:
        return self in (Endpoint.GENERATE_OBJECT, Endpoint.STREAM_OBJECT)


# -- directives ------------------------------------------------------------------------------

DIRECTIVES: dict[str, str] = {
    "chunks=N": "split the reply into N pieces of equal length (code points)",
    "nopartial": "send the reply in one piece",
    "delay=S": "wait S seconds before any output (after the session event)",
    "slow=S": "wait S seconds before every piece",
    "fail": "the CLI exits with code 1 before any output",
    "fail-after=N": "the CLI exits with code 1 after N pieces",
    "is-error": "the CLI ends with an error result",
    "noresult": "the CLI prints no result line",
    "args": "reply with the JSON of the CLI arguments (model, system, tools, resume)",
    "history": "append ' | history: <earlier prompts of the session joined by / >'",
    "unicode": "append a multi-byte sample to the text; object strings become non-ASCII",
    "rawline": "/stream: a line that is not JSON comes first (forwarded as a text event)",
    "badjson": "reply with prose instead of JSON",
    "fence": "wrap the JSON reply in a Markdown fence (EXTRACTION_FALLBACK)",
    "items=N": "arrays in generated objects get N items (default 2)",
    "bytes=N": "reply with exactly N bytes of UTF-8 text",
    "drop-after=N": "close the connection after N pieces (no done)",
    "close-before-headers": "close the connection before the response starts",
    "first-byte=S": "wait S seconds before the response headers",
    "malformed-after=N": "send a data: line that is not JSON after N pieces",
    "unknown-events": "interleave events with unknown names",
    "warnings": "add BUFFER_PARSE_WARNING warning events",
    "crlf": "frame events with CRLF line endings",
    "split-utf8": "cut a multi-byte character across two network writes",
    "huge=N": "reply with a single text event of N bytes (default 1000000)",
    "after-done": "send events after done",
    "no-object": "/stream-object sends no object event",
    "invalid-object": "the generated object violates the schema",
    "invalid-object=N": "the first N answers of this conversation violate the schema (this "
    "turn counts as the first; a repair in the same session gets the next)",
    "cut-end[=mid-line]": "the stream stops inside its result/error event, without done",
    "status=CODE[:html|empty|json|no-retry-after]": "answer CODE like a proxy would",
}

_DIRECTIVE_RE = re.compile(r"\s*\[\[([a-z-]+)(?:=([^\]\s]*))?\]\]")
_FLAGS = {"nopartial", "args", "history", "unicode", "rawline", "badjson", "fence"}
_INTS = {"chunks", "items", "bytes"}
_FLOATS = {"delay", "slow"}


@dataclass(slots=True)
class Directives:
    """What the ``[[...]]`` directives of a prompt asked for."""

    chunks: int | None = None
    items: int = 2
    bytes: int | None = None
    delay: float = 0.0
    slow: float = 0.0
    nopartial: bool = False
    args: bool = False
    history: bool = False
    unicode: bool = False
    rawline: bool = False
    badjson: bool = False
    fence: bool = False
    invalid_turns: int = 0
    faults: list[Fault] = field(default_factory=list[Fault])


def _fault_directive(name: str, value: str | None) -> Fault | None:
    number = int(value) if value is not None and value.isdigit() else None
    if name == "fail" and value is None:
        return Fault.cli_error(0, "Error: simulated CLI failure requested by [[fail]] directive")
    if name == "fail-after" and number is not None:
        return Fault.cli_error(
            number, "Error: simulated CLI failure requested by [[fail-after]] directive"
        )
    if name == "drop-after" and number is not None:
        return Fault.drop(number)
    if name == "malformed-after" and number is not None:
        return Fault.malformed_line(number)
    if name == "huge":
        return Fault.huge_event(number if number is not None else 1_000_000)
    if name == "cut-end" and value in (None, "blank-line", "mid-line"):
        return Fault.cut_end(value or "blank-line")
    if name == "first-byte" and value is not None:
        return Fault.slow_first_byte(float(value))
    if name == "status" and value is not None:
        code, _, mode = value.partition(":")
        status = int(code)
        if mode == "no-retry-after":
            return Fault.rate_limited(None)
        if status == 429 and not mode:
            return Fault.rate_limited()
        default = "json" if status in (401, 403) else "html"
        return Fault.http_error(status, mode or default)
    if value is None:
        simple = {
            "is-error": Fault.is_error,
            "noresult": Fault.no_result,
            "close-before-headers": Fault.close_before_headers,
            "unknown-events": Fault.unknown_events,
            "warnings": Fault.extra_warnings,
            "crlf": Fault.crlf,
            "split-utf8": Fault.split_utf8,
            "after-done": Fault.events_after_done,
            "no-object": Fault.no_object,
            "invalid-object": Fault.invalid_object,
        }.get(name)
        return simple() if simple else None
    return None


def parse_directives(prompt: str) -> tuple[str, Directives]:
    """Strip the known directives from ``prompt``; unknown ``[[...]]`` stay in the text."""
    found = Directives()

    def take(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        try:
            if name in _FLAGS and value is None:
                setattr(found, name, True)
            elif name in _INTS and value is not None:
                setattr(found, name, max(0, int(value)))
            elif name in _FLOATS and value is not None:
                setattr(found, name, max(0.0, float(value)))
            elif name == "invalid-object" and value is not None and value.isdigit():
                found.invalid_turns = int(value)
            else:
                fault = _fault_directive(name, value)
                if fault is None:
                    return match.group(0)
                found.faults.append(fault)
        except ValueError:
            return match.group(0)
        return ""

    clean = _DIRECTIVE_RE.sub(take, prompt).strip()
    return clean, found


# -- JSON Schema → example value -------------------------------------------------------------

_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uri-reference": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "duration": "P1D",
}
_MAX_DEPTH = 12


def _as_dict(value: object) -> dict[str, Any] | None:
    return cast(dict[str, Any], value) if isinstance(value, dict) else None


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(ref := schema.get("$ref"), str) and ref.startswith("#") and seen < 32:
        target: Any = root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            target = _as_dict(target)
            target = target.get(part) if target is not None else None
        resolved = _as_dict(target)
        if resolved is None:
            return {}
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**resolved, **siblings}
        seen += 1
    return schema


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    low: float | None = None
    high: float | None = None
    low_open = high_open = False
    if isinstance(m := schema.get("minimum"), int | float) and not isinstance(m, bool):
        low = float(m)
        low_open = schema.get("exclusiveMinimum") is True
    if isinstance(m := schema.get("maximum"), int | float) and not isinstance(m, bool):
        high = float(m)
        high_open = schema.get("exclusiveMaximum") is True
    if isinstance(m := schema.get("exclusiveMinimum"), int | float) and not isinstance(m, bool):
        low, low_open = float(m), True
    if isinstance(m := schema.get("exclusiveMaximum"), int | float) and not isinstance(m, bool):
        high, high_open = float(m), True
    step = schema.get("multipleOf")
    if integer:
        lo = None if low is None else (math.floor(low) + 1 if low_open else math.ceil(low))
        hi = None if high is None else (math.ceil(high) - 1 if high_open else math.floor(high))
        value = 1
        if lo is not None and value < lo:
            value = lo
        if hi is not None and value > hi:
            value = hi if lo is None else max(lo, hi)
        if isinstance(step, int) and not isinstance(step, bool) and step > 0 and value % step:
            value += step - value % step
        return value

    def inside(x: float) -> bool:
        above = low is None or (x > low if low_open else x >= low)
        below = high is None or (x < high if high_open else x <= high)
        return above and below

    candidates = [1.5]
    if low is not None and high is not None:
        candidates.append((low + high) / 2)
    if low is not None:
        candidates += [low + 0.5 if low_open else low]
    if high is not None:
        candidates += [high - 0.5 if high_open else high]
    number = float(next((c for c in candidates if inside(c)), candidates[-1]))
    if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
        number = float(math.ceil(number / step) * step)
    return int(number) if number.is_integer() else number  # JSON (and JS) print 18, not 18.0


def _string(schema: dict[str, Any], unicode: bool) -> str:
    fmt = schema.get("format")
    text = _FORMATS[fmt] if isinstance(fmt, str) and fmt in _FORMATS else None
    if text is None:
        text = UNICODE_STRING if unicode else "example"
    min_len = schema.get("minLength")
    max_len = schema.get("maxLength")
    if isinstance(min_len, int) and len(text) < min_len:
        text += "x" * (min_len - len(text))
    if isinstance(max_len, int) and len(text) > max_len:
        text = text[:max_len]
    return text


def _pick_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        names = [t for t in cast(list[Any], kind) if isinstance(t, str)]
        non_null = [t for t in names if t != "null"]
        return non_null[0] if non_null else (names[0] if names else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for item in cast(list[Any], schema.get("allOf") or []):
        part = _as_dict(item) or {}
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                props = cast(dict[str, Any], value)
                merged["properties"] = {
                    **cast(dict[str, Any], merged.get("properties", {})),
                    **props,
                }
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*cast(list[Any], merged.get("required", [])), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for i, value in enumerate(values):
        if value in out:
            if isinstance(value, str):
                value = f"{value} {i + 1}"
            elif isinstance(value, int | float) and not isinstance(value, bool):
                value = value + i
        out.append(value)
    return out


class _Generator:
    def __init__(self, root: dict[str, Any], items: int, unicode: bool) -> None:
        self.root = root
        self.items = items
        self.unicode = unicode

    def value(self, node: object, depth: int = 0) -> Any:
        schema = _as_dict(node)
        if schema is None:
            return "example" if node is not False else None
        schema = _resolve(schema, self.root)
        if "allOf" in schema:
            schema = _merge_all_of(schema)
        if "const" in schema:
            return schema["const"]
        enum_values = schema.get("enum")
        if isinstance(enum_values, list) and enum_values:
            return cast(list[Any], enum_values)[0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                choices = [_resolve(o, self.root) for o in cast(list[Any], options) if _as_dict(o)]
                usable = [o for o in choices if o.get("type") != "null"] or choices
                if usable:
                    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                    return self.value({**rest, **usable[0]}, depth + 1)
        kind = _pick_type(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "integer":
            return _number(schema, integer=True)
        if kind == "number":
            return _number(schema, integer=False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema, self.unicode)

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = _as_dict(schema.get("properties")) or {}
        raw_required = schema.get("required")
        required = [r for r in cast(list[Any], raw_required or []) if isinstance(r, str)]
        names = list(props) if depth < _MAX_DEPTH else [n for n in props if n in required]
        result = {name: self.value(props[name], depth + 1) for name in names}
        for name in required:
            result.setdefault(name, "example")
        return result

    def array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            return [self.value(p, depth + 1) for p in cast(list[Any], prefix)]
        count = self.items if depth < _MAX_DEPTH else 0
        if isinstance(low := schema.get("minItems"), int):
            count = max(count, low)
        if isinstance(high := schema.get("maxItems"), int):
            count = min(count, high)
        item = schema.get("items", {})
        values = [self.value(item, depth + 1) for _ in range(count)]
        return _unique(values) if schema.get("uniqueItems") is True else values


def example_for_schema(schema: dict[str, Any], *, items: int = 2, unicode: bool = False) -> Any:
    """A deterministic value that satisfies ``schema`` (the local gateway's model output).

    Every property is filled, arrays get ``items`` entries, enums take their first value,
    ``anyOf`` its first non-null branch; numbers respect their bounds; strings are ``"example"``
    (or ``"example ✓ 日本語 🚀"`` with ``unicode``) unless a known ``format`` applies.
    ``pattern`` is not honoured.
    """
    return _Generator(schema, items, unicode).value(schema)


def _break(value: Any) -> Any:
    """Make ``value`` violate ``schema``: a wrong type in the first property / item."""
    if isinstance(value, dict):
        obj = cast(dict[str, Any], value)
        if obj:
            first = next(iter(obj))
            old = obj[first]
            return {**obj, first: "not a number" if not isinstance(old, str) else 12345}
        return "not an object"
    if isinstance(value, list):
        return {"not": "an array"}
    return [value]


# -- JSON extraction and partial parse -------------------------------------------------------

_FENCE_RE = re.compile(r"```(?:json|JSON)?[ \t]*\r?\n?(.*?)\r?\n?```", re.DOTALL)


def extract_json(text: str) -> tuple[bool, Any, str | None]:
    """``(ok, value, strategy)``: the value of ``text``, falling back to a Markdown block or the
    first ``{...}``/``[...]`` span in it (``strategy`` names the fallback used)."""
    try:
        return True, json.loads(text), None
    except ValueError:
        pass
    fence = _FENCE_RE.search(text)
    if fence:
        try:
            return True, json.loads(fence.group(1)), "markdown-block"
        except ValueError:
            pass
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if starts:
        start = min(starts)
        end = text.rfind("}" if text[start] == "{" else "]")
        if end > start:
            try:
                return True, json.loads(text[start : end + 1]), "embedded-json"
            except ValueError:
                pass
    return False, None, None


def js_parse_error(text: str) -> str:
    """The message V8's ``JSON.parse`` gives for ``text`` (roughly)."""
    stripped = text.lstrip()
    if not stripped:
        return "Unexpected end of JSON input"
    shown = f'"{text[:10]}"...' if len(text) > 10 else f'"{text}"'
    return f"Unexpected token '{stripped[0]}', {shown} is not valid JSON"


def partial_parse(text: str) -> tuple[bool, Any]:
    """Best-effort parse of a JSON prefix, as the gateway's ``partial-object.parsed``."""
    try:
        return True, jiter.from_json(text.encode(), partial_mode="trailing-strings")
    except ValueError:
        return False, None


# -- requests and runs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """A validated request body."""

    prompt: str
    system: str | None = None
    session_id: str | None = None
    model: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    schema: dict[str, Any] | None = None


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

    def fault(self, kind: FaultKind) -> Fault | None:
        return self.faults.get(kind)

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
                value = _break(value)
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
