"""JSON Schema → example value: the deterministic object the echo model answers with, and how
``[[invalid-object]]`` breaks it."""

from __future__ import annotations

import math
from typing import Any, cast

__all__ = ["break_value", "example_for_schema"]

UNICODE_STRING = "example ✓ 日本語 🚀"

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


def break_value(value: Any) -> Any:
    """An example value made to violate its schema: a wrong type in the first property / item."""
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
