"""Request bodies checked as the real gateway's zod schemas check them (the 400 issues), and the
tools a request may use."""

from __future__ import annotations

from typing import Any, cast

from ._endpoints import Endpoint, GenerateRequest
from ._settings import GatewaySettings
from ._spawn import as_argument

__all__ = ["effective_tools", "validate"]

_SCHEMA_KEYWORDS = frozenset(
    {
        "type", "properties", "items", "prefixItems", "$ref", "$defs", "definitions", "anyOf",
        "oneOf", "allOf", "not", "enum", "const", "required", "additionalProperties",
        "patternProperties", "if", "then", "else", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "format",
        "minItems", "maxItems", "uniqueItems", "contains", "minProperties", "maxProperties",
    }
)  # fmt: skip


def _zod_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


_MISSING = object()


def _type_issue(path: list[str | int], expected: str, value: Any) -> dict[str, Any]:
    received = "undefined" if value is _MISSING else _zod_type(value)
    message = "Required" if value is _MISSING else f"Expected {expected}, received {received}"
    return {
        "code": "invalid_type",
        "expected": expected,
        "received": received,
        "path": path,
        "message": message,
    }


def validate(body: Any, endpoint: Endpoint) -> tuple[GenerateRequest | None, list[dict[str, Any]]]:
    """Check a body like the gateway's zod schema; returns the request or the issues."""
    if not isinstance(body, dict):
        return None, [_type_issue([], "object", body)]
    data = cast(dict[str, Any], body)
    issues: list[dict[str, Any]] = []
    prompt = data.get("prompt", _MISSING)
    if not isinstance(prompt, str):
        issues.append(_type_issue(["prompt"], "string", prompt))
    for key in ("system", "sessionId", "model"):
        if key in data and not isinstance(data[key], str):
            issues.append(_type_issue([key], "string", data[key]))
    tools: Any = data.get("allowedTools")
    if "allowedTools" in data:
        if not isinstance(tools, list):
            issues.append(_type_issue(["allowedTools"], "array", tools))
        else:
            for i, tool in enumerate(cast(list[Any], tools)):
                if not isinstance(tool, str):
                    issues.append(_type_issue(["allowedTools", i], "string", tool))
    if not endpoint.streaming and "maxTokens" in data:
        issues += _max_tokens_issues(data["maxTokens"])
    schema: Any = data.get("schema", _MISSING)
    if endpoint.wants_object:
        if not isinstance(schema, dict):
            issues.append(_type_issue(["schema"], "object", schema))
        elif not _SCHEMA_KEYWORDS.intersection(cast(dict[str, Any], schema)):
            message = (
                "Schema must contain at least one valid JSON Schema keyword "
                "(e.g., type, properties, $ref)"
            )
            issues.append({"code": "custom", "message": message, "path": ["schema"]})
    if issues:
        return None, issues
    return GenerateRequest(
        prompt=as_argument(cast(str, prompt)),
        system=as_argument(data.get("system")),
        session_id=as_argument(data.get("sessionId")),
        model=as_argument(data.get("model")),
        allowed_tools=(
            tuple(as_argument(t) for t in cast(list[str], tools)) if tools is not None else None
        ),
        schema=cast(dict[str, Any], schema) if endpoint.wants_object else None,
    ), []


def _max_tokens_issues(value: Any) -> list[dict[str, Any]]:
    path: list[str | int] = ["maxTokens"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [_type_issue(path, "number", value)]
    if isinstance(value, float) and not value.is_integer():
        return [
            {
                "code": "invalid_type",
                "expected": "integer",
                "received": "float",
                "path": path,
                "message": "Expected integer, received float",
            }
        ]
    if value <= 0:
        return [
            {
                "code": "too_small",
                "minimum": 0,
                "type": "number",
                "inclusive": False,
                "exact": False,
                "message": "Number must be greater than 0",
                "path": path,
            }
        ]
    return []


def effective_tools(
    settings: GatewaySettings, requested: tuple[str, ...] | None
) -> tuple[bool, list[str] | None]:
    """``(ok, tools)``: (gateway allowed ∩ requested) − disallowed, in the gateway's order when
    it has a list. ``None`` (also for an empty result) means no allow-list: all tools. ``ok`` is
    False when the request named tools and none survive (NO_TOOLS_AVAILABLE)."""
    allowed, blocked = settings.allowed_tools, settings.disallowed_tools
    tools = None if allowed is None else [t for t in allowed if t not in blocked]
    if requested is not None:
        base = list(requested) if tools is None else tools
        tools = [t for t in base if t in requested and t not in blocked]
    return not (requested and not tools), tools or None
