"""What the gateway cannot spawn: every CLI argument must fit the OS limit on one argument.

The gateway hands the prompt, the system prompt, the model, the session id, each tool name and
(on ``/generate-object``) the schema to the Claude CLI as separate command-line arguments. Linux
refuses one argument of 131,072 bytes or more (``MAX_ARG_STRLEN``, counting its NUL): the gateway
then answers 500 ``spawn E2BIG`` on ``/generate-*`` and, on ``/stream`` and ``/stream-object``,
its process exits (PROTOCOL.md, field notes). So the SDK measures each argument as the gateway
builds it and raises ``PROMPT_TOO_LARGE`` before sending.

How the gateway builds its arguments (gateway 2.3.x):

- ``/generate-text``, ``/stream``: prompt, system, model, session id and tools as given.
- ``/generate-object``: the same, plus ``--json-schema`` with ``JSON.stringify(schema)``.
- ``/stream-object``: the prompt gets a fixed instruction (:data:`STREAM_OBJECT_PROMPT_EXTRA`
  bytes, ASCII) and ``JSON.stringify(schema, null, 2)`` appended; the system prompt is a fixed
  sentence (:data:`STREAM_OBJECT_SYSTEM_BYTES`), appended after a blank line to yours if you
  gave one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._jsjson import js_stringify
from .errors import KoineError

__all__ = [
    "MAX_ARG_BYTES",
    "STREAM_OBJECT_PROMPT_EXTRA",
    "STREAM_OBJECT_SYSTEM_BYTES",
    "check_arguments",
]

_STREAM_OBJECT = "/stream-object"  # Endpoint.STREAM_OBJECT.path (_request imports this module)
_GENERATE_OBJECT = "/generate-object"  # Endpoint.GENERATE_OBJECT.path

MAX_ARG_BYTES = 131_071
"""The longest CLI argument, in UTF-8 bytes, that the gateway can pass (131,072 with its NUL)."""

STREAM_OBJECT_PROMPT_EXTRA = 163
"""Bytes of the JSON instruction ``/stream-object`` puts between your prompt and the schema."""

STREAM_OBJECT_SYSTEM_BYTES = 129
"""Bytes of the system sentence ``/stream-object`` always sends (after yours and a blank line
when you gave a system prompt)."""


def _size(text: str) -> int:
    if text.isascii():
        return len(text)
    # A lone surrogate cannot be UTF-8; Node writes it as U+FFFD, three bytes, like this does.
    return len(text.encode("utf-8", "surrogatepass"))


# id(schema) -> (schema, compact size, indented size). The schemas come from cached parsers
# (the same dict on every call), so each is measured once; holding it keeps its id valid.
_schema_sizes: dict[int, tuple[Any, int, int]] = {}
_SCHEMA_SIZES_KEPT = 64


def _schema_size(schema: dict[str, Any], indented: bool) -> int:
    entry = _schema_sizes.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = (schema, _size(js_stringify(schema)), _size(js_stringify(schema, 2)))
        if len(_schema_sizes) >= _SCHEMA_SIZES_KEPT:
            _schema_sizes.clear()
        _schema_sizes[id(schema)] = entry
    return entry[2] if indented else entry[1]


def check_arguments(
    path: str,
    *,
    prompt: str,
    system: str | None,
    session_id: str | None,
    model: str | None,
    tools: Sequence[str] | None,
    schema: dict[str, Any] | None,
) -> None:
    """Raise ``PROMPT_TOO_LARGE`` (naming the argument, its size and the limit) when one CLI
    argument the gateway builds from this request would pass :data:`MAX_ARG_BYTES`."""
    sizes: list[tuple[str, int]] = []
    if path == _STREAM_OBJECT and schema is not None:
        sizes.append(
            (
                "the prompt with the schema /stream-object appends to it",
                _size(prompt) + STREAM_OBJECT_PROMPT_EXTRA + _schema_size(schema, indented=True),
            )
        )
        extra = STREAM_OBJECT_SYSTEM_BYTES + (2 if system else 0)
        sizes.append(("the system prompt", (_size(system) if system else 0) + extra))
    else:
        sizes.append(("the prompt", _size(prompt)))
        if system:
            sizes.append(("the system prompt", _size(system)))
        if path == _GENERATE_OBJECT and schema is not None:
            sizes.append(("the schema (as JSON)", _schema_size(schema, indented=False)))
    if model:
        sizes.append(("the model name", _size(model)))
    if session_id:
        sizes.append(("the session id", _size(session_id)))
    sizes += [(f"the tool name {tool[:40]!r}", _size(tool)) for tool in tools or ()]
    for what, size in sizes:
        if size > MAX_ARG_BYTES:
            raise KoineError(
                f"{what} is {size:,} bytes in UTF-8; the gateway passes it to the CLI as one "
                f"argument, which the operating system limits to {MAX_ARG_BYTES:,} bytes. "
                "Shorten it (or split the work); nothing was sent.",
                "PROMPT_TOO_LARGE",
            )
