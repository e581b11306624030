"""Result types: what the SDK hands back. Field names are Python's; the wire's camelCase is
mapped once, here, by aliases."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "ConcurrencySlots",
    "GatewayConcurrency",
    "GenerateObjectResult",
    "GenerateTextResult",
    "HealthStatus",
    "KoineUsage",
]

T = TypeVar("T")

Source = Literal["live", "replay"]
"""Where an answer came from: the gateway (``"live"``) or the ledger (``"replay"``: nothing
was sent, nothing paid)."""


class _WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, frozen=True
    )


class KoineUsage(_WireModel):
    """Token usage of one request."""

    input_tokens: int
    output_tokens: int
    total_tokens: int

    def __add__(self, other: KoineUsage) -> KoineUsage:
        return KoineUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class GenerateTextResult(_WireModel):
    """The answer of :meth:`KoineClient.generate_text`.

    ``session_id`` is the id to pass as ``session_id=`` to continue this conversation.
    ``source`` is ``"replay"`` when the answer came from the ledger (``replay=``; ``usage`` is
    then what it cost when it was recorded); ``ledger_key`` is its key in the ledger when it was
    recorded or replayed (else ``None``).
    """

    text: str
    usage: KoineUsage
    session_id: str
    source: Source = "live"
    ledger_key: str | None = None

    def __str__(self) -> str:
        return self.text


class GenerateObjectResult(_WireModel, Generic[T]):
    """The answer of :meth:`KoineClient.generate_object`: ``object`` is validated against the
    schema you passed; ``raw_text`` is the JSON text it was parsed from. ``attempts`` counts the
    answers it took (more than 1 only with ``repairs=``), and ``usage`` sums them all.
    ``source`` and ``ledger_key``: as in :class:`GenerateTextResult`."""

    object: T
    raw_text: str
    usage: KoineUsage
    session_id: str
    attempts: int = 1
    source: Source = "live"
    ledger_key: str | None = None


class _GenerateObjectWire(_WireModel):  # pyright: ignore[reportUnusedClass]
    """``/generate-object`` as sent; ``object`` is checked against the schema afterwards."""

    object: Any
    raw_text: str
    usage: KoineUsage
    session_id: str


class ConcurrencySlots(_WireModel):
    active: int
    limit: int


class GatewayConcurrency(_WireModel):
    streaming: ConcurrencySlots
    non_streaming: ConcurrencySlots


class HealthStatus(_WireModel):
    """The gateway's ``/health`` answer. ``healthy`` is ``status == "healthy"``."""

    model_config = ConfigDict(extra="allow")

    status: Literal["healthy", "unhealthy"] | str
    claude_cli: str | None = Field(default=None)
    timestamp: str | None = None
    concurrency: GatewayConcurrency | None = None

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"
