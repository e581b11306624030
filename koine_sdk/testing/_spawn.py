"""What the CLI behind the real gateway receives: its arguments as Node passes them, and the
operating system's limit on one argument (``E2BIG``). See PROTOCOL.md's field notes."""

from __future__ import annotations

import re
from typing import Any

from .._jsjson import js_stringify
from .._limits import STREAM_OBJECT_PROMPT_EXTRA, STREAM_OBJECT_SYSTEM_BYTES
from ._endpoints import Endpoint, GenerateRequest

__all__ = ["E2BIG_BYTES", "as_argument", "cli_argument_sizes"]

E2BIG_BYTES = 131072  # Linux MAX_ARG_STRLEN: one CLI argument, with its NUL, must be shorter


def cli_argument_sizes(
    endpoint: Endpoint, request: GenerateRequest, tools: list[str] | None
) -> list[int]:
    """UTF-8 sizes of the CLI arguments the real gateway builds for this request (a lone
    surrogate counts 3 bytes: Node writes U+FFFD). On ``/stream-object`` the prompt carries a
    fixed instruction and the schema as ``JSON.stringify(schema, null, 2)``, and the system
    prompt a fixed sentence; ``/generate-object`` passes ``JSON.stringify(schema)``."""

    def size(text: str) -> int:
        return len(text.encode("utf-8", "surrogatepass"))

    sizes: list[int] = []
    schema = request.schema
    if endpoint is Endpoint.STREAM_OBJECT and schema is not None:
        sizes.append(
            size(request.prompt) + STREAM_OBJECT_PROMPT_EXTRA + size(js_stringify(schema, 2))
        )
        system_extra = size(request.system) + 2 if request.system else 0
        sizes.append(STREAM_OBJECT_SYSTEM_BYTES + system_extra)
    else:
        sizes.append(size(request.prompt))
        if request.system:
            sizes.append(size(request.system))
        if endpoint is Endpoint.GENERATE_OBJECT and schema is not None:
            sizes.append(size(js_stringify(schema)))
    sizes += [size(v) for v in (request.model, request.session_id) if v]
    sizes += [size(t) for t in tools or ()]
    return sizes


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def as_argument(text: Any) -> Any:
    """A string as the CLI receives it: Node writes a lone surrogate (valid in a JSON string
    escape, not in UTF-8) as U+FFFD, also three bytes."""
    if isinstance(text, str) and not text.isascii():
        return _LONE_SURROGATE.sub("\ufffd", text)
    return text
