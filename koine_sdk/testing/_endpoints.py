"""The four generation endpoints (the SDK's own :class:`~koine_sdk.Endpoint`), and the request
body they take once it is validated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._request import Endpoint

__all__ = ["Endpoint", "GenerateRequest"]


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """A validated request body."""

    prompt: str
    system: str | None = None
    session_id: str | None = None
    model: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    schema: dict[str, Any] | None = None
