"""JavaScript's ``JSON.stringify`` in Python, for one purpose: knowing the exact length of the
JSON text the gateway (a Node.js program) builds from a schema and passes to the CLI.

Same escapes as Python's ``json`` module with ``ensure_ascii=False``; numbers as ECMAScript's
``Number.prototype.toString`` writes them (``1.0`` → ``1``, ``5e-05`` → ``0.00005``, ``1e21`` →
``1e+21``); the indented form as ``JSON.stringify(value, null, indent)``. Key order may differ
(JavaScript puts integer-like keys first); lengths do not.
"""

from __future__ import annotations

import json.encoder
import math
from collections.abc import Callable
from typing import Any, cast

__all__ = ["js_number", "js_stringify"]

_encode_string: Callable[[str], str] = json.encoder.encode_basestring


def js_number(value: float) -> str:
    """``String(value)`` in JavaScript (``"null"`` for NaN and the infinities, as JSON has)."""
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    text = repr(abs(value))  # the shortest round-trip digits, as JavaScript picks them
    mantissa, _, exp_text = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exp_text) if exp_text else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * -n + digits
    else:
        e = n - 1
        exponent = ("+" if e >= 0 else "-") + str(abs(e))
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + exponent
    return sign + out


def js_stringify(value: Any, indent: int | None = None) -> str:
    """``JSON.stringify(value)``, or ``JSON.stringify(value, null, indent)``."""
    parts: list[str] = []
    _encode(value, parts, "" if indent is None else " " * indent, 0)
    return "".join(parts)


def _encode(value: Any, out: list[str], pad: str, level: int) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(js_number(value))
    elif isinstance(value, dict | list | tuple):
        items: list[tuple[str | None, Any]]
        if isinstance(value, dict):
            mapping = cast("dict[Any, Any]", value)
            items = [(str(k), v) for k, v in mapping.items()]
            opening, closing = "{", "}"
        else:
            items = [(None, v) for v in cast("list[Any] | tuple[Any, ...]", value)]
            opening, closing = "[", "]"
        if not items:
            out.append(opening + closing)
            return
        inner = "\n" + pad * (level + 1) if pad else ""
        out.append(opening)
        for index, (key, item) in enumerate(items):
            if index:
                out.append(",")
            out.append(inner)
            if key is not None:
                out.append(_encode_string(key) + (": " if pad else ":"))
            _encode(item, out, pad, level + 1)
        out.append(("\n" + pad * level if pad else "") + closing)
    else:
        out.append(_encode_string(str(value)))
