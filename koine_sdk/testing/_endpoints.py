"""The four generation endpoints, and the request body they take once it is validated."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["Endpoint", "GenerateRequest"]


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


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """A validated request body."""

    prompt: str
    system: str | None = None
    session_id: str | None = None
    model: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    schema: dict[str, Any] | None = None
