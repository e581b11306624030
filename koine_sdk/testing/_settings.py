"""Settings of the local gateway, and how the real gateway's environment variables map to them."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

__all__ = ["DEFAULT_PORT", "GatewaySettings", "settings_from_env"]

DEFAULT_PORT = 3100


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """What a :class:`LocalGateway` does, changeable at runtime with ``gw.configure(...)``.

    ``allowed_tools=None`` allows every tool (the real gateway's default). ``chunk_delay`` waits
    before every piece of a reply, ``first_byte_delay`` before the response headers of the four
    generation endpoints. ``strict_sessions``: a ``sessionId`` the gateway never issued fails like
    the real CLI does (CLI_EXIT_ERROR "No conversation found"); set it False to start a new
    conversation under that id instead. ``healthy=False`` makes ``/health`` answer 503.
    ``events_per_chunk`` > 1 packs that many events into one HTTP chunk (one write) when no delay
    separates them: not what the real gateway does (one chunk per event), but a proxy may, and it
    lifts the server's event rate for benchmarks that measure a client's parser.
    ``report_concurrency=False`` leaves the ``concurrency`` block out of ``/health`` (a gateway
    version or a proxy that does not tell its limits). ``health_status=502`` (any status) makes
    ``/health`` answer that status with a proxy's HTML page, as when the gateway behind a proxy
    is down (``[[status=502]]`` does the same to one generation request).
    """

    auth_key: str
    max_streaming: int = 3
    max_nonstreaming: int = 5
    allowed_tools: tuple[str, ...] | None = None
    disallowed_tools: tuple[str, ...] = ()
    chunk_delay: float = 0.0
    first_byte_delay: float = 0.0
    strict_sessions: bool = True
    healthy: bool = True
    events_per_chunk: int = 1
    report_concurrency: bool = True
    health_status: int | None = None

    @staticmethod
    def new_key() -> str:
        """A random bearer key."""
        return "koine-local-" + secrets.token_urlsafe(18)


def _tool_list(name: str, raw: str) -> tuple[str, ...]:
    try:
        value: Any = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a JSON array of strings, got {raw!r}") from exc
    items = cast(list[Any], value) if isinstance(value, list) else None
    if items is None or not all(isinstance(v, str) for v in items):
        raise ValueError(f"{name} must be a JSON array of strings, got {raw!r}")
    return tuple(cast(list[str], items))


def _int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for :class:`LocalGateway` from the real gateway's variables.

    Reads ``CLAUDE_CODE_GATEWAY_API_KEY``, ``GATEWAY_PORT`` (or ``PORT``),
    ``KOINE_MAX_STREAMING_CONCURRENT``, ``KOINE_MAX_NONSTREAMING_CONCURRENT``,
    ``KOINE_ALLOWED_TOOLS`` and ``KOINE_DISALLOWED_TOOLS`` (JSON arrays); absent ones are left out.
    Raises ``ValueError`` on a malformed value.
    """
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    if key := env.get("CLAUDE_CODE_GATEWAY_API_KEY"):
        out["auth_key"] = key
    port = env.get("GATEWAY_PORT") or env.get("PORT")
    if port:
        out["port"] = _int("GATEWAY_PORT", port)
    if raw := env.get("KOINE_MAX_STREAMING_CONCURRENT"):
        out["max_streaming"] = _int("KOINE_MAX_STREAMING_CONCURRENT", raw)
    if raw := env.get("KOINE_MAX_NONSTREAMING_CONCURRENT"):
        out["max_nonstreaming"] = _int("KOINE_MAX_NONSTREAMING_CONCURRENT", raw)
    if raw := env.get("KOINE_ALLOWED_TOOLS"):
        out["allowed_tools"] = _tool_list("KOINE_ALLOWED_TOOLS", raw)
    if raw := env.get("KOINE_DISALLOWED_TOOLS"):
        out["disallowed_tools"] = _tool_list("KOINE_DISALLOWED_TOOLS", raw)
    return out
