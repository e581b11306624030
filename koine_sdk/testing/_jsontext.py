"""JSON text as the gateway writes and reads it: the compact and spaced encoders
(``JSON.stringify``), strict ``JSON.parse`` and V8's message when it fails, the extraction
fallbacks of ``/stream-object`` (Markdown block, embedded span) and the partial parse behind
``partial-object.parsed``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import jiter

__all__ = [
    "compact",
    "extract_json",
    "js_parse_error",
    "partial_parse",
    "spaced",
    "strict_loads",
]

JsonEncode = Callable[[Any], str]
compact: JsonEncode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
spaced: JsonEncode = json.JSONEncoder(ensure_ascii=False).encode


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(text: str) -> Any:
    """``JSON.parse``: like :func:`json.loads` but ``NaN`` and ``Infinity`` are errors."""
    return json.loads(text, parse_constant=_no_constants)


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
