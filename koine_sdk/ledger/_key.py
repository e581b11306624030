"""The ledger's key: a stable hash of a request's endpoint and of everything that decides the
answer. Public through :func:`koine_sdk.ledger.request_key`, so any layer (``extract``, a
record/replay of SDK calls) computes the same key from the body it is about to send."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "KEY_FIELDS",
    "RequestShape",
    "canonical_json",
    "content_hash",
    "request_key",
    "request_keys",
]

KEY_FIELDS = ("system", "schema", "model", "allowedTools", "sessionId")
"""The wire body fields that, besides ``prompt``, decide the answer (absent or ``None``: left
out). Anything else in a body (none today) does not change the key."""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(text: str) -> str:
    """sha256 (hex) of a text: the id of a stored schema or system prompt."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _prefix(path: str, body: Mapping[str, Any]) -> bytes:
    if not isinstance(path, str) or not path.startswith("/"):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ValueError(f"path must be an endpoint such as '/generate-object' (got {path!r})")
    fixed: dict[str, Any] = {}
    for name in KEY_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if name == "schema":
            value = content_hash(canonical_json(value))  # a long schema hashes once per call
        fixed[name] = value
    # The prefix is one line of JSON (json.dumps escapes newlines); the prompt follows a "\n".
    return (canonical_json([path, fixed]) + "\n").encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What many requests share (all of the body but the prompt), serialised once: the key
    function, and the schema and system prompt as stored (once, by hash) in a ledger."""

    path: str
    model: str | None
    allowed_tools: tuple[str, ...] | None
    session_id: str | None
    system: str | None
    system_hash: str | None
    schema_json: str | None
    schema_hash: str | None
    key: Callable[[str], str]

    @classmethod
    def of(cls, path: str, body: Mapping[str, Any]) -> RequestShape:
        """The shape of ``body`` (its ``prompt``, if any, is ignored)."""
        system = body.get("system")
        schema = body.get("schema")
        schema_json = canonical_json(schema) if schema is not None else None
        tools = body.get("allowedTools")
        return cls(
            path=path,
            model=body.get("model"),
            allowed_tools=tuple(tools) if tools is not None else None,
            session_id=body.get("sessionId"),
            system=system,
            system_hash=content_hash(system) if system is not None else None,
            schema_json=schema_json,
            schema_hash=content_hash(schema_json) if schema_json is not None else None,
            key=request_keys(path, body),
        )


def request_keys(path: str, body: Mapping[str, Any]) -> Callable[[str], str]:
    """A function ``prompt -> key`` for many requests that differ only by their prompt:
    ``request_keys(path, body)(p) == request_key(path, {**body, "prompt": p})``, with the
    fixed part (schema included) serialised once."""
    start = hashlib.sha256(_prefix(path, body))

    def key(prompt: str) -> str:
        h = start.copy()
        h.update(prompt.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    return key


def request_key(path: str, body: Mapping[str, Any]) -> str:
    """The ledger key of one request: sha256 (hex) of the endpoint ``path`` and the wire body's
    ``prompt``, ``system``, ``schema`` (as JSON), ``model``, ``allowedTools`` and ``sessionId``.

    ``body`` is the request body as sent (camelCase names, as built by the SDK). The key does
    not depend on the gateway's URL or key, on the order of keys in the schema, or on fields
    set to ``None``. Raises ``ValueError`` for a body without a string ``prompt``."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise ValueError("body['prompt'] must be a string")
    return request_keys(path, body)(prompt)
